// The real stemsphere-server binary as a child process on a free loopback port: started with
// `--listen 127.0.0.1:0`, its port read from the line it prints, stopped with SIGKILL or SIGTERM.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace stemsphere::service::testing {

class ServerProcess {
  public:
    explicit ServerProcess(const std::string& db_url, std::vector<std::string> extra = {}) {
        std::vector<std::string> args = {"stemsphere-server", "--db",       db_url, "--listen",
                                         "127.0.0.1:0",       "--threads",  "16",   "--lease-rate",
                                         "1000000",           "--sweep-ms", "200"};
        args.insert(args.end(), extra.begin(), extra.end());
        int out[2];
        if (pipe(out) != 0) return;
        pid_ = fork();
        if (pid_ == 0) {
            dup2(out[1], STDOUT_FILENO);
            close(out[0]);
            close(out[1]);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(STEMSPHERE_SERVER_BINARY, argv.data());
            _exit(127);
        }
        close(out[1]);
        FILE* f = fdopen(out[0], "r");
        char line[256] = {0};
        if (f && std::fgets(line, sizeof(line), f)) {
            const char* colon = std::strrchr(line, ':');
            if (colon) port_ = std::atoi(colon + 1);
        }
        if (f) std::fclose(f);
    }
    ~ServerProcess() { kill9(); }
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    void kill9() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            int status = 0;
            waitpid(pid_, &status, 0);
            pid_ = -1;
        }
    }
    void signal(int sig) const {
        if (pid_ > 0) kill(pid_, sig);
    }
    // The exit status once the process ends within `timeout`; -1 if it is still running then
    // (it is left running), -2 if it died from a signal.
    int wait_exit(std::chrono::milliseconds timeout) {
        const auto until = std::chrono::steady_clock::now() + timeout;
        while (pid_ > 0) {
            int status = 0;
            const pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
            }
            if (std::chrono::steady_clock::now() > until) return -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return -1;
    }
    int port() const { return port_; }

  private:
    pid_t pid_ = -1;
    int port_ = 0;
};

// Runs the binary with `args` to completion; returns its exit status and what it printed.
inline int run_server_command(const std::vector<std::string>& args, std::string* output) {
    std::string cmd = STEMSPHERE_SERVER_BINARY;
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    char buf[512];
    std::string text;
    while (std::fgets(buf, sizeof(buf), p)) text += buf;
    const int status = pclose(p);
    if (output) *output = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

}  // namespace stemsphere::service::testing
