// stemsphere-server: `serve` (default) runs the JSON API; `admin ...` is the operator CLI.
#include <malloc.h>
#include <pthread.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "service/http_api.h"
#include "service/idempotency.h"

using namespace stemsphere::service;

namespace {

const char kUsage[] =
    "usage: stemsphere-server [serve] [--db URL] [--listen HOST:PORT] [options]\n"
    "       stemsphere-server admin --db URL COMMAND [args]\n"
    "\n"
    "  --db URL               sqlite:PATH (default sqlite:stemsphere.db) or postgresql://...\n"
    "  --listen HOST:PORT     default 127.0.0.1:8080; port 0 picks a free one\n"
    "  --threads N            HTTP worker threads (≥ concurrent keep-alive connections), 64\n"
    "  --public-url URL       base of verification links and the device URI\n"
    "  --webhook-secret S     payment webhook secret (or env STEMSPHERE_WEBHOOK_SECRET)\n"
    "  --price MT             milli-tokens per minute of metered audio, default 1000\n"
    "  --signin-rate N        sign-ins per minute per IP (per account: N/4), default 20\n"
    "  --signup-rate N        sign-ups per minute per IP, default 10\n"
    "  --lease-rate N         lease requests per minute per account, default 600\n"
    "  --sweep-ms N           expiry sweeper period, default 5000\n"
    "  --max-open-leases N    open leases per account, default 16\n"
    "  --db-connections N     PostgreSQL connections of this process, default 24\n"
    "  --cluster-hash-slots N password hashes at once over all nodes (PostgreSQL), default 2\n"
    "  --shutdown-timeout-s N on SIGTERM, wait this long for requests in flight, default 10\n"
    "\n"
    "admin commands (print JSON):\n"
    "  grant --account ID --amount MT --category subscription|purchase|promo --id GRANT_ID\n"
    "        [--priority N] [--expires-in-days D]\n"
    "  refund --grant GRANT_ID --id REFUND_ID\n"
    "  reverse --transfer TRANSFER_ID --id REVERSE_ID\n"
    "  balance --account ID\n"
    "  reconcile              exit 0 when clean, 3 when something differs\n"
    "  sweep                  expire due leases and lots now\n"
    "  purge                  apply retention (unverified accounts, security logs)\n"
    "  outbox [--mark-sent]   list unsent mail\n";

// The whole text as a base-10 integer, or std::invalid_argument naming the flag: std::stoll alone
// reads "12abc" as 12, and a grant of the wrong amount is worse than a usage error.
int64_t whole_integer(const std::string& text, const std::string& flag) {
    size_t used = 0;
    int64_t value = 0;
    try {
        value = std::stoll(text, &used, 10);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || std::isspace(static_cast<unsigned char>(text[0]))) {
        throw std::invalid_argument(flag + " wants an integer, not '" + text + "'");
    }
    return value;
}

// The whole text as a positive finite number (rates per minute).
double positive_number(const std::string& text, const std::string& flag) {
    size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || std::isspace(static_cast<unsigned char>(text[0])) ||
        !(value > 0) || !std::isfinite(value)) {
        throw std::invalid_argument(flag + " wants a positive number, not '" + text + "'");
    }
    return value;
}

int die(const std::string& message) {
    std::fprintf(stderr, "stemsphere-server: %s\n", message.c_str());
    return 2;
}

void print(const Json::Value& v) {
    std::cout << v.toStyledString();
}

int admin(Db& db, const std::vector<std::string>& args, const ServerConfig& config) {
    if (args.empty()) return die("admin needs a command\n" + std::string(kUsage));
    std::map<std::string, std::string> opt;
    for (size_t i = 1; i < args.size(); ++i) {
        if (args[i].rfind("--", 0) != 0) return die("unexpected argument " + args[i]);
        if (args[i] == "--mark-sent") {
            opt["mark-sent"] = "1";
        } else if (i + 1 < args.size()) {
            opt[args[i].substr(2)] = args[i + 1];
            ++i;
        } else {
            return die(args[i] + " needs a value");
        }
    }
    auto need = [&opt](const char* name) -> std::string {
        auto it = opt.find(name);
        if (it == opt.end()) throw std::invalid_argument(std::string("--") + name + " is required");
        return it->second;
    };
    Ledger ledger(db, system_now_us, config.ledger);
    const std::string& cmd = args[0];
    try {
        if (cmd == "grant") {
            GrantRequest g;
            g.grant_id = need("id");
            g.owner = need("account");
            g.amount_mt = whole_integer(need("amount"), "--amount");
            g.category = need("category");
            g.priority = opt.count("priority") ? whole_integer(opt["priority"], "--priority") : 100;
            g.effective_at_us = system_now_us();
            if (opt.count("expires-in-days")) {
                const int64_t days = whole_integer(opt["expires-in-days"], "--expires-in-days");
                if (days < 1 || days > 36500) {
                    throw std::invalid_argument("--expires-in-days must be 1..36500");
                }
                g.expires_at_us = g.effective_at_us + days * 86400'000'000LL;
            }
            g.actor = "admin-cli";
            const Outcome out = ledger.grant(g);
            print(out.body);
            return out.ok() ? 0 : 1;
        }
        if (cmd == "refund") {
            const Outcome out = ledger.refund_grant(need("id"), need("grant"), "admin-cli");
            print(out.body);
            return out.ok() ? 0 : 1;
        }
        if (cmd == "reverse") {
            const Outcome out = ledger.reverse_transfer(need("id"), need("transfer"), "admin-cli");
            print(out.body);
            return out.ok() ? 0 : 1;
        }
        if (cmd == "balance") {
            print(ledger.balance(need("account")));
            return 0;
        }
        if (cmd == "reconcile") {
            Json::Value report;
            Json::Value items(Json::arrayValue);
            for (const auto& d : ledger.reconcile()) {
                Json::Value item;
                item["what"] = d.what;
                item["detail"] = d.detail;
                items.append(item);
            }
            report["clean"] = items.empty();
            report["differences"] = items;
            print(report);
            return items.empty() ? 0 : 3;
        }
        if (cmd == "sweep") {
            Json::Value r;
            r["transfers_written"] = Json::Int64(ledger.sweep());
            print(r);
            return 0;
        }
        if (cmd == "purge") {
            crypto_init();
            Accounts accounts(db, system_now_us, ServerSecrets::load_or_create(db), config.auth);
            Json::Value r;
            r["rows_removed"] = Json::Int64(accounts.purge());
            print(r);
            return 0;
        }
        if (cmd == "outbox") {
            Json::Value items(Json::arrayValue);
            db.write([&](DbTx& tx) {
                for (const auto& row :
                     tx.query("SELECT id, to_addr, subject, body, created_at FROM "
                              "mail_outbox WHERE sent_at IS NULL ORDER BY created_at")) {
                    Json::Value m;
                    m["id"] = row.text(0);
                    m["to"] = row.text(1);
                    m["subject"] = row.text(2);
                    m["body"] = row.text(3);
                    items.append(m);
                    if (opt.count("mark-sent")) {
                        tx.exec("UPDATE mail_outbox SET sent_at = ? WHERE id = ?",
                                {system_now_us(), row.text(0)});
                    }
                }
            });
            print(items);
            return 0;
        }
    } catch (const std::invalid_argument& e) {
        return die(e.what());
    } catch (const std::out_of_range& e) {
        return die(std::string("number out of range: ") + e.what());
    }
    return die("unknown admin command '" + cmd + "'\n" + kUsage);
}

}  // namespace

int main(int argc, char** argv) {
    // glibc gives a thread arena's free top back to the kernel (madvise MADV_DONTNEED) once it
    // exceeds 128 KiB; with 64 worker threads that happened on most requests, and each time the
    // kernel flushed the TLB on every core: 13 % of the server's CPU under lease+settle load
    // (perf, 2-core VM). Keep freed memory in the process instead; it is reused by the next
    // request.
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    std::vector<std::string> args(argv + 1, argv + argc);
    ServerConfig config;
    std::string db_url = "sqlite:stemsphere.db";
    DbOptions db_options;
    int64_t shutdown_timeout_s = 10;
    if (const char* s = std::getenv("STEMSPHERE_WEBHOOK_SECRET")) config.webhook_secret = s;
    bool admin_mode = false;
    std::vector<std::string> rest;
    try {
        for (size_t i = 0; i < args.size(); ++i) {
            const std::string& a = args[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
                return args[++i];
            };
            if (a == "-h" || a == "--help") {
                std::fputs(kUsage, stdout);
                return 0;
            } else if (a == "serve" && i == 0) {
            } else if (a == "admin" && i == 0) {
                admin_mode = true;
            } else if (a == "--db") {
                db_url = value();
            } else if (a == "--listen") {
                const std::string v = value();
                const auto colon = v.rfind(':');
                if (colon == std::string::npos)
                    throw std::invalid_argument("--listen wants HOST:PORT");
                config.host = v.substr(0, colon);
                config.port = static_cast<int>(whole_integer(v.substr(colon + 1), "--listen port"));
                if (config.port < 0 || config.port > 65535) throw std::invalid_argument("bad port");
            } else if (a == "--threads") {
                config.threads = static_cast<int>(whole_integer(value(), a));
                if (config.threads < 2 || config.threads > 4096) {
                    throw std::invalid_argument("--threads must be 2..4096");
                }
            } else if (a == "--public-url") {
                config.auth.public_url = value();
            } else if (a == "--webhook-secret") {
                config.webhook_secret = value();
            } else if (a == "--price") {
                config.ledger.milli_tokens_per_minute = whole_integer(value(), a);
                if (config.ledger.milli_tokens_per_minute < 1) {
                    throw std::invalid_argument("--price must be ≥ 1");
                }
            } else if (a == "--signin-rate") {
                config.signin_per_minute_ip = positive_number(value(), a);
                config.signin_per_minute_account = config.signin_per_minute_ip / 4;
                if (!(config.signin_per_minute_ip > 0)) throw std::invalid_argument("bad rate");
            } else if (a == "--signup-rate") {
                config.signup_per_minute_ip = positive_number(value(), a);
                if (!(config.signup_per_minute_ip > 0)) throw std::invalid_argument("bad rate");
            } else if (a == "--lease-rate") {
                config.lease_per_minute_account = positive_number(value(), a);
                if (!(config.lease_per_minute_account > 0)) throw std::invalid_argument("bad rate");
            } else if (a == "--max-open-leases") {
                config.ledger.max_open_leases = whole_integer(value(), a);
                if (config.ledger.max_open_leases < 1) {
                    throw std::invalid_argument("--max-open-leases must be ≥ 1");
                }
            } else if (a == "--sweep-ms") {
                config.sweep_interval_ms = whole_integer(value(), a);
                if (config.sweep_interval_ms < 10) throw std::invalid_argument("--sweep-ms ≥ 10");
            } else if (a == "--db-connections") {
                const int64_t n = whole_integer(value(), a);
                if (n < 1 || n > 1000)
                    throw std::invalid_argument("--db-connections must be 1..1000");
                db_options.postgres_connections = static_cast<size_t>(n);
            } else if (a == "--cluster-hash-slots") {
                const int64_t n = whole_integer(value(), a);
                if (n < 1 || n > 1000) {
                    throw std::invalid_argument("--cluster-hash-slots must be 1..1000");
                }
                config.auth.cluster_hash_slots = static_cast<int>(n);
            } else if (a == "--shutdown-timeout-s") {
                shutdown_timeout_s = whole_integer(value(), a);
                if (shutdown_timeout_s < 1 || shutdown_timeout_s > 3600) {
                    throw std::invalid_argument("--shutdown-timeout-s must be 1..3600");
                }
            } else if (admin_mode) {
                rest.push_back(a);
            } else {
                throw std::invalid_argument("unknown argument '" + a + "'");
            }
        }
    } catch (const std::exception& e) {
        return die(std::string(e.what()) + "\n" + kUsage);
    }

    sigset_t stop_signals;  // blocked before any thread starts, so every thread inherits it
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    bool db_close_message = false;
    try {
        std::unique_ptr<Db> db = open_database(db_url, db_options);
        if (admin_mode) return admin(*db, rest, config);
        ApiServer server(*db, config);
        const int port = server.bind();
        std::printf("stemsphere-server listening on %s:%d (%s)\n", config.host.c_str(), port,
                    db->dialect() == Dialect::kSqlite ? "sqlite" : "postgresql");
        std::fflush(stdout);
        // SIGINT/SIGTERM are taken by a thread with sigwait (blocked everywhere else), so the
        // shutdown runs as ordinary code, not inside a signal handler. stop() closes the
        // listener and the idle connections; run() returns once the requests in flight are
        // answered. A request still running after the bound is abandoned: its transaction rolls
        // back when the process exits, and its client retries with the same id.
        std::thread waiter([&server, stop_signals, shutdown_timeout_s] {
            int sig = 0;
            sigwait(&stop_signals, &sig);
            std::fprintf(stderr, "stemsphere-server: signal %d, finishing requests in flight\n",
                         sig);
            // The bound runs from the signal on, whatever stop() waits for.
            std::thread([shutdown_timeout_s] {
                std::this_thread::sleep_for(std::chrono::seconds(shutdown_timeout_s));
                std::fprintf(stderr,
                             "stemsphere-server: requests still running after %lld s; exiting\n",
                             static_cast<long long>(shutdown_timeout_s));
                std::_Exit(1);
            }).detach();
            server.stop();
        });
        waiter.detach();
        server.run();
        db_close_message = true;  // leaving this scope joins the sweeper, then closes the db
    } catch (const std::exception& e) {
        return die(e.what());
    }
    // The server and the database (its connections) are closed by now.
    if (db_close_message) std::fprintf(stderr, "stemsphere-server: stopped\n");
    return 0;
}
