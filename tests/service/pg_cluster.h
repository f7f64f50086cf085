// A throw-away PostgreSQL 15 cluster on 127.0.0.1 for tests: initdb into a temp dir as the
// `postgres` user (tests run as root), start on a free port, stop and remove on destruction.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace stemsphere::service::testing {

class PgCluster {
  public:
    static constexpr const char* kBin = "/usr/lib/postgresql/15/bin";

    // Nothing when PostgreSQL is not installed or cannot be started here; `why` says which.
    static std::optional<PgCluster> start(std::string& why) {
        if (!std::filesystem::exists(std::string(kBin) + "/initdb")) {
            why = "PostgreSQL 15 binaries are not installed";
            return std::nullopt;
        }
        if (std::system("id postgres >/dev/null 2>&1") != 0) {
            why = "no postgres user";
            return std::nullopt;
        }
        char dir_template[] = "/tmp/stemsphere-pg-XXXXXX";
        if (!mkdtemp(dir_template)) {
            why = "mkdtemp failed";
            return std::nullopt;
        }
        PgCluster c;
        c.dir_ = dir_template;
        c.port_ = free_port();
        const std::string as_pg = geteuid() == 0 ? "runuser -u postgres -- " : "";
        const std::string init = "chown postgres " + c.dir_ + " 2>/dev/null; cd /tmp && " + as_pg +
                                 kBin + "/initdb -D " + c.dir_ + "/data -A trust -U postgres " +
                                 "--no-sync >" + c.dir_ + "/initdb.log 2>&1";
        const std::string run = "cd /tmp && " + as_pg + kBin + "/pg_ctl -D " + c.dir_ +
                                "/data -l " + c.dir_ + "/server.log -w -t 60 -o \"-p " +
                                std::to_string(c.port_) + " -k " + c.dir_ +
                                " -c listen_addresses=127.0.0.1 -c max_connections=200" +
                                " -c shared_buffers=128MB\" start >/dev/null 2>&1";
        if (std::system(init.c_str()) != 0 || std::system(run.c_str()) != 0) {
            why = "could not start a PostgreSQL cluster (see " + c.dir_ + ")";
            c.dir_.clear();  // keep the logs for diagnosis
            return std::nullopt;
        }
        c.running_ = true;
        return c;
    }

    PgCluster(PgCluster&& other) noexcept
        : dir_(std::move(other.dir_)), port_(other.port_), running_(other.running_) {
        other.running_ = false;
        other.dir_.clear();
    }
    PgCluster& operator=(PgCluster&&) = delete;
    ~PgCluster() {
        if (running_) {
            const std::string as_pg = geteuid() == 0 ? "runuser -u postgres -- " : "";
            const std::string stop = "cd /tmp && " + as_pg + kBin + "/pg_ctl -D " + dir_ +
                                     "/data -m immediate -w stop >/dev/null 2>&1";
            [[maybe_unused]] const int rc = std::system(stop.c_str());
        }
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }

    // A fresh database for one test, so tests do not see each other's rows.
    std::string create_database(const std::string& name) const {
        const std::string cmd = std::string(kBin) + "/psql -h 127.0.0.1 -p " +
                                std::to_string(port_) + " -U postgres -qc 'CREATE DATABASE " +
                                name + "' postgres >/dev/null 2>&1";
        [[maybe_unused]] const int rc = std::system(cmd.c_str());
        return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + name;
    }
    int port() const { return port_; }

    // A crash of the database server (no checkpoint, no goodbye to clients), then a start on the
    // same port and data, which runs crash recovery.
    bool stop_immediately() const { return pg_ctl("-m immediate -w stop"); }
    bool start_again() const {
        return pg_ctl("-w -t 60 -o \"-p " + std::to_string(port_) + " -k " + dir_ +
                      " -c listen_addresses=127.0.0.1 -c max_connections=200" +
                      " -c shared_buffers=128MB\" start");
    }

  private:
    PgCluster() = default;

    bool pg_ctl(const std::string& what) const {
        const std::string as_pg = geteuid() == 0 ? "runuser -u postgres -- " : "";
        const std::string cmd = "cd /tmp && " + as_pg + kBin + "/pg_ctl -D " + dir_ + "/data -l " +
                                dir_ + "/server.log " + what + " >/dev/null 2>&1";
        return std::system(cmd.c_str()) == 0;
    }

    static int free_port() {
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof(addr);
        bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        const int port = ntohs(addr.sin_port);
        close(fd);
        return port;
    }

    std::string dir_;
    int port_ = 0;
    bool running_ = false;
};

}  // namespace stemsphere::service::testing
