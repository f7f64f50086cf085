// What the metering client costs a DAW while nothing happens: CPU time and wake-ups per minute
// of the one client thread, signed in with a lease held, against a real stemsphere-server on
// loopback (SQLite in a temp dir). Beside it: the same thread while audio is metered (usage
// recorded once a second) and a naive licence check that asks the server once a second, the
// baseline the ratios are taken against. No timed asserts; figures only.
//
// usage: bench_client_idle [idle seconds, default 60] [other phases' seconds, default 20]
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include <json/reader.h>

#include "client/account.h"
#include "client/lease_meter.h"

using namespace stemsphere::client;

namespace {

struct ThreadCost {
    double cpu_ms = 0;
    long wakeups = 0;      // times the thread slept and woke (voluntary context switches)
    long involuntary = 0;  // preemptions
};

ThreadCost thread_cost() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    ThreadCost c;
    c.cpu_ms = (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
    c.wakeups = ru.ru_nvcsw;
    c.involuntary = ru.ru_nivcsw;
    return c;
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return out;
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    ::pclose(p);
    return out;
}

struct Phase {
    explicit Phase(const char* n) : name(n) {}
    const char* name;
    double seconds = 0;
    ThreadCost cost;
    long polls = 0;
};

void print_row(const Phase& p, const Phase& base) {
    const double per_min = 60.0 / p.seconds;
    const double base_cpu = base.cost.cpu_ms * 60.0 / base.seconds;
    const double base_wake = static_cast<double>(base.cost.wakeups) * 60.0 / base.seconds;
    const double cpu = p.cost.cpu_ms * per_min;
    const double wake = static_cast<double>(p.cost.wakeups) * per_min;
    std::printf("%-46s %10.2f %8.2fx %12.1f %8.2fx %10.1f\n", p.name, cpu,
                base_cpu > 0 ? cpu / base_cpu : 0.0, wake, base_wake > 0 ? wake / base_wake : 0.0,
                static_cast<double>(p.polls) * per_min);
}

}  // namespace

int main(int argc, char** argv) {
    const double idle_s = argc > 1 ? std::atof(argv[1]) : 60.0;
    const double other_s = argc > 2 ? std::atof(argv[2]) : 20.0;
    if (idle_s <= 0 || other_s <= 0) {
        std::fprintf(stderr, "usage: bench_client_idle [idle seconds] [other seconds]\n");
        return 2;
    }
    char tmpl[] = "/tmp/stemsphere-bench-client-XXXXXX";
    if (!::mkdtemp(tmpl)) return 1;
    const std::string dir = tmpl;
    const std::string db = "sqlite:" + dir + "/ledger.db";

    // The server, on a free port.
    int out[2];
    if (::pipe(out) != 0) return 1;
    const pid_t server = ::fork();
    if (server == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        ::close(out[0]);
        ::close(out[1]);
        ::execl(STEMSPHERE_SERVER_BINARY, "stemsphere-server", "--db", db.c_str(), "--listen",
                "127.0.0.1:0", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[256] = {0};
    int port = 0;
    if (f && std::fgets(line, sizeof(line), f)) {
        if (const char* colon = std::strrchr(line, ':')) port = std::atoi(colon + 1);
    }
    auto finish = [&](int code) {
        ::kill(server, SIGTERM);
        ::waitpid(server, nullptr, 0);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        return code;
    };
    if (port <= 0) {
        std::fprintf(stderr, "the server did not start\n");
        return finish(1);
    }
    const std::string url = "http://127.0.0.1:" + std::to_string(port);

    // A verified, funded account, signed in as the plugin would be.
    HttpClient http(url);
    Json::Value up;
    up["email"] = "bench@example.org";
    up["name"] = "Bench";
    up["password"] = "correct horse battery";
    const HttpReply created = http.post("/v1/accounts", up);
    const std::string account = created.body["account_id"].asString();
    Json::Value mails;
    {
        std::istringstream in(
            run(std::string(STEMSPHERE_SERVER_BINARY) + " admin --db " + db + " outbox"));
        Json::CharReaderBuilder b;
        std::string errs;
        Json::parseFromStream(b, in, &mails, &errs);
    }
    Json::Value verify;
    const std::string body = mails[0]["body"].asString();
    verify["token"] = body.substr(body.rfind("Token: ") + 7);
    http.post("/v1/accounts/verify", verify);
    run(std::string(STEMSPHERE_SERVER_BINARY) + " admin --db " + db + " grant --account " +
        account + " --amount 10000000 --category purchase --id bench");
    Json::Value in;
    in["email"] = "bench@example.org";
    in["password"] = "correct horse battery";
    const HttpReply tokens = http.post("/v1/sessions", in);
    std::string error;
    const std::string config = dir + "/config";
    if (!tokens.ok() || !save_sign_in(resolve_paths(config), url, "bench", tokens.body, error)) {
        std::fprintf(stderr, "cannot sign in: %s %s\n", tokens.describe().c_str(), error.c_str());
        return finish(1);
    }

    Phase idle{"metering client, idle (signed in, lease held)"};
    Phase active{"metering client, 1 s of audio recorded per s"};
    Phase naive{"baseline: GET /v1/balance once a second"};

    // Each phase runs on a fresh thread so RUSAGE_THREAD counts only that phase.
    auto meter_phase = [&](Phase& phase, double seconds, bool record) {
        std::thread t([&] {
            MeterOptions o;
            o.server_url = url;
            o.config_dir = config;
            auto meter = open_meter(o);
            for (int i = 0; i < 200 && !meter->licensed(); ++i) {
                meter->poll();
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            if (!meter->licensed()) {
                std::fprintf(stderr, "no lease: %s\n", meter->status().message.c_str());
                return;
            }
            // The plugin's client thread: poll, sleep what poll() says (woken early only to
            // record usage, here once a second when audio runs).
            const ThreadCost c0 = thread_cost();
            const auto t0 = std::chrono::steady_clock::now();
            const auto end = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(seconds));
            auto next_record = t0 + std::chrono::seconds(1);
            while (std::chrono::steady_clock::now() < end) {
                const auto wait = meter->poll();
                ++phase.polls;
                auto wake = std::chrono::steady_clock::now() + wait;
                if (record && next_record < wake) wake = next_record;
                if (end < wake) wake = end;
                std::this_thread::sleep_until(wake);
                if (record && std::chrono::steady_clock::now() >= next_record) {
                    meter->record_usage(1000);
                    next_record += std::chrono::seconds(1);
                }
            }
            const ThreadCost c1 = thread_cost();
            phase.seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            phase.cost = {c1.cpu_ms - c0.cpu_ms, c1.wakeups - c0.wakeups,
                          c1.involuntary - c0.involuntary};
            meter->shutdown();
        });
        t.join();
    };
    std::thread baseline([&] {
        Session session(resolve_paths(config), http);
        const ThreadCost c0 = thread_cost();
        const auto t0 = std::chrono::steady_clock::now();
        auto next = t0;
        while (std::chrono::steady_clock::now() - t0 < std::chrono::duration<double>(other_s)) {
            session.authed("GET", "/v1/balance", Json::Value());
            ++naive.polls;
            next += std::chrono::seconds(1);
            std::this_thread::sleep_until(next);
        }
        const ThreadCost c1 = thread_cost();
        naive.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        naive.cost = {c1.cpu_ms - c0.cpu_ms, c1.wakeups - c0.wakeups,
                      c1.involuntary - c0.involuntary};
    });
    baseline.join();
    meter_phase(idle, idle_s, false);
    meter_phase(active, other_s, true);

    std::printf("client thread cost per minute (loopback server, %.0f s idle, %.0f s others)\n",
                idle.seconds, active.seconds);
    std::printf("%-46s %10s %9s %12s %9s %10s\n", "", "CPU ms/min", "ratio", "wake-ups/min",
                "ratio", "polls/min");
    print_row(naive, naive);
    print_row(idle, naive);
    print_row(active, naive);
    return finish(0);
}
