// stemsphere-server: `serve` (default) runs the JSON API; `admin ...` is the operator CLI.
#include <pthread.h>

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
            g.amount_mt = std::stoll(need("amount"));
            g.category = need("category");
            g.priority = opt.count("priority") ? std::stoll(opt["priority"]) : 100;
            g.effective_at_us = system_now_us();
            if (opt.count("expires-in-days")) {
                g.expires_at_us =
                    g.effective_at_us + std::stoll(opt["expires-in-days"]) * 86400'000'000LL;
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
    std::vector<std::string> args(argv + 1, argv + argc);
    ServerConfig config;
    std::string db_url = "sqlite:stemsphere.db";
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
                config.port = std::stoi(v.substr(colon + 1));
                if (config.port < 0 || config.port > 65535) throw std::invalid_argument("bad port");
            } else if (a == "--threads") {
                config.threads = std::stoi(value());
                if (config.threads < 2 || config.threads > 4096) {
                    throw std::invalid_argument("--threads must be 2..4096");
                }
            } else if (a == "--public-url") {
                config.auth.public_url = value();
            } else if (a == "--webhook-secret") {
                config.webhook_secret = value();
            } else if (a == "--price") {
                config.ledger.milli_tokens_per_minute = std::stoll(value());
                if (config.ledger.milli_tokens_per_minute < 1) {
                    throw std::invalid_argument("--price must be ≥ 1");
                }
            } else if (a == "--signin-rate") {
                config.signin_per_minute_ip = std::stod(value());
                config.signin_per_minute_account = config.signin_per_minute_ip / 4;
                if (!(config.signin_per_minute_ip > 0)) throw std::invalid_argument("bad rate");
            } else if (a == "--signup-rate") {
                config.signup_per_minute_ip = std::stod(value());
                if (!(config.signup_per_minute_ip > 0)) throw std::invalid_argument("bad rate");
            } else if (a == "--lease-rate") {
                config.lease_per_minute_account = std::stod(value());
                if (!(config.lease_per_minute_account > 0)) throw std::invalid_argument("bad rate");
            } else if (a == "--max-open-leases") {
                config.ledger.max_open_leases = std::stoll(value());
                if (config.ledger.max_open_leases < 1) {
                    throw std::invalid_argument("--max-open-leases must be ≥ 1");
                }
            } else if (a == "--sweep-ms") {
                config.sweep_interval_ms = std::stoll(value());
                if (config.sweep_interval_ms < 10) throw std::invalid_argument("--sweep-ms ≥ 10");
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
    try {
        std::unique_ptr<Db> db = open_database(db_url);
        if (admin_mode) return admin(*db, rest, config);
        ApiServer server(*db, config);
        const int port = server.bind();
        std::printf("stemsphere-server listening on %s:%d (%s)\n", config.host.c_str(), port,
                    db->dialect() == Dialect::kSqlite ? "sqlite" : "postgresql");
        std::fflush(stdout);
        // SIGINT/SIGTERM are taken by a thread with sigwait (blocked everywhere else), so the
        // shutdown runs as ordinary code, not inside a signal handler.
        std::thread waiter([&server, stop_signals] {
            int sig = 0;
            sigwait(&stop_signals, &sig);
            if (sig != 0) server.stop();
        });
        waiter.detach();
        server.run();
        return 0;
    } catch (const std::exception& e) {
        return die(e.what());
    }
}
