// stemsphere-account: sign in (device flow), see the balance, usage and devices, sign out.
// Human output by default, --json for scripts. Exit codes are listed in kUsage.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "client/account.h"
#include "client/qr.h"
#include "client/session.h"

using namespace stemsphere::client;

namespace {

const char kUsage[] =
    "usage: stemsphere-account COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  login [--server URL] [--no-qr]   sign in with a code approved in a browser\n"
    "  status                           who is signed in, to which server, pending usage\n"
    "  balance                          tokens available and held\n"
    "  usage [--days N]                 metered minutes and tokens per day (default 14 days)\n"
    "  devices                          signed-in devices (sessions)\n"
    "  logout                           end this device's session and forget its tokens\n"
    "\n"
    "options: --server URL (else $STEMSPHERE_SERVER, the config file, the default)\n"
    "         --config-dir DIR (else $XDG_CONFIG_HOME/stemsphere)   --json (for scripts)\n"
    "\n"
    "exit codes: 0 done, 1 the server refused, 2 bad command line, 3 not signed in,\n"
    "            4 server unreachable or malformed reply, 5 sign-in declined or expired,\n"
    "            6 a local file is corrupt or cannot be written\n";

enum Exit {
    kOk = 0,
    kRefused = 1,
    kUsageError = 2,
    kSignedOut = 3,
    kUnreachable = 4,
    kDenied = 5,
    kLocalFile = 6
};

constexpr const char* kClientId = "stemsphere-account";

struct Options {
    std::string command;
    std::string server_flag;
    std::string config_dir;
    bool json = false;
    bool qr = true;
    int days = 14;
};

void print_json(const Json::Value& v) {
    std::cout << v.toStyledString();
}

int fail(const Options& o, int code, const std::string& message) {
    if (o.json) {
        Json::Value v;
        v["ok"] = false;
        v["exit_code"] = code;
        v["error"] = message;
        print_json(v);
    } else {
        std::cerr << "stemsphere-account: " << message << "\n";
    }
    return code;
}

int reply_failure(const Options& o, const HttpReply& r, const std::string& what) {
    if (!r.answered() || !r.json_ok || r.status >= 500) {
        return fail(o, kUnreachable, what + ": " + r.describe());
    }
    if (r.status == 401) return fail(o, kSignedOut, what + ": " + r.describe());
    return fail(o, kRefused, what + ": " + r.describe());
}

std::string tokens_text(std::int64_t mt) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3f", static_cast<double>(mt) / 1000.0);
    return buf;
}

std::string minutes_text(std::int64_t ms) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(ms) / 60000.0);
    return buf;
}

std::string date_text(std::int64_t unix_s, bool with_time) {
    const std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), with_time ? "%Y-%m-%d %H:%M" : "%Y-%m-%d", &tm);
    return buf;
}

std::string device_name() {
    char host[256] = {0};
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) return "stemsphere-account";
    return std::string(host) + " (stemsphere-account)";
}

// The signed-in session, or an exit code saying why there is none.
struct Signed {
    Paths paths;
    std::string server;
    std::unique_ptr<HttpClient> http;
    std::unique_ptr<Session> session;
};

int open_session(const Options& o, Signed& s) {
    s.paths = resolve_paths(o.config_dir);
    s.server = resolve_server_url(o.server_flag, s.paths.config_file());
    if (const std::string bad = check_server_url(s.server); !bad.empty()) {
        return fail(o, kUsageError, bad);
    }
    s.http = std::make_unique<HttpClient>(s.server);
    s.session = std::make_unique<Session>(s.paths, *s.http);
    if (s.session->state() == CredentialsState::corrupt) {
        return fail(o, kLocalFile, s.session->error());
    }
    if (!s.session->signed_in()) return fail(o, kSignedOut, s.session->error());
    return kOk;
}

int cmd_login(const Options& o) {
    const Paths paths = resolve_paths(o.config_dir);
    const std::string server = resolve_server_url(o.server_flag, paths.config_file());
    if (const std::string bad = check_server_url(server); !bad.empty()) {
        return fail(o, kUsageError, bad);
    }
    HttpClient http(server);
    DeviceAuthorization auth;
    std::string error;
    if (!start_device_authorization(http, kClientId, device_name(), auth, error)) {
        return fail(o, kUnreachable, error);
    }
    if (o.json) {
        Json::Value v;
        v["event"] = "authorize";
        v["server"] = server;
        v["verification_uri"] = auth.verification_uri;
        v["verification_uri_complete"] = auth.verification_uri_complete;
        v["user_code"] = auth.user_code;
        v["expires_in"] = Json::Int64(auth.expires_in_s);
        v["interval"] = Json::Int64(auth.interval_s);
        std::cout << v.toStyledString() << std::flush;
    } else {
        std::cout << "To sign in to " << server << ", open\n\n    " << auth.verification_uri
                  << "\n\nand enter the code\n\n    " << auth.user_code << "\n\n";
        if (o.qr) {
            const std::string qr = draw_qr(auth.verification_uri_complete);
            if (!qr.empty()) std::cout << "or scan this code with a phone:\n\n" << qr << "\n";
        }
        std::cout << "Waiting for approval (the code expires in " << auth.expires_in_s / 60
                  << " min; Ctrl-C to cancel)..." << std::endl;
    }
    Json::Value tokens;
    const DeviceOutcome outcome =
        wait_for_device_approval(http, auth, kClientId, tokens, error,
                                 [](std::chrono::seconds s) { std::this_thread::sleep_for(s); });
    if (outcome == DeviceOutcome::denied || outcome == DeviceOutcome::expired) {
        return fail(o, kDenied, error);
    }
    if (outcome == DeviceOutcome::failed) return fail(o, kUnreachable, error);
    if (!save_sign_in(paths, server, kClientId, tokens, error)) return fail(o, kLocalFile, error);
    if (!o.server_flag.empty() && !save_default_server(paths, server, error)) {
        return fail(o, kLocalFile, "signed in, but " + error);
    }
    if (o.json) {
        Json::Value v;
        v["event"] = "signed_in";
        v["ok"] = true;
        v["account_id"] = tokens["account_id"];
        v["session_id"] = tokens["session_id"];
        v["device_id"] = tokens["device_id"];
        v["credentials_file"] = paths.credentials_file();
        print_json(v);
    } else {
        std::cout << "Signed in (account " << tokens["account_id"].asString() << ", device "
                  << tokens["device_id"].asString()
                  << ").\nCredentials: " << paths.credentials_file() << " (readable only by you)\n";
    }
    return kOk;
}

// Usage journals waiting to be settled and journals set aside as corrupt.
void count_journals(const Paths& paths, int& pending, int& corrupt) {
    pending = corrupt = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(paths.journal_dir(), ec)) {
        if (e.path().extension() == ".jnl") ++pending;
    }
    for (const auto& e : std::filesystem::directory_iterator(paths.corrupt_dir(), ec)) {
        if (e.path().extension() == ".jnl") ++corrupt;
    }
}

int cmd_status(const Options& o) {
    Signed s;
    const int rc = open_session(o, s);
    int pending = 0, corrupt = 0;
    count_journals(resolve_paths(o.config_dir), pending, corrupt);
    if (rc != kOk) return rc;
    const HttpReply me = s.session->authed("GET", "/v1/me", Json::Value());
    const Credentials& c = s.session->credentials();
    if (o.json) {
        Json::Value v;
        v["ok"] = me.ok();
        v["server"] = s.server;
        v["account_id"] = c.account_id;
        v["session_id"] = c.session_id;
        v["device_id"] = c.device_id;
        v["reachable"] = me.ok();
        if (me.ok())
            v["me"] = me.body;
        else
            v["error"] = me.describe();
        v["journals_pending"] = pending;
        v["journals_corrupt"] = corrupt;
        v["config_dir"] = s.paths.dir;
        print_json(v);
    } else {
        std::cout << "Server:   " << s.server << "\n";
        std::cout << "Account:  " << c.account_id;
        if (me.ok() && me.body["email"].isString())
            std::cout << " (" << me.body["email"].asString() << ")";
        std::cout << "\nDevice:   " << c.device_id << "  session " << c.session_id << "\n";
        std::cout << "Reach:    " << (me.ok() ? "reachable" : "NOT reachable: " + me.describe())
                  << "\n";
        std::cout << "Journals: " << pending << " usage journal(s) open or waiting to settle";
        if (corrupt)
            std::cout << ", " << corrupt << " set aside as corrupt in " << s.paths.corrupt_dir();
        std::cout << "\n";
    }
    if (!me.ok()) return reply_failure(o, me, "cannot reach the account");
    return kOk;
}

int cmd_balance(const Options& o) {
    Signed s;
    if (const int rc = open_session(o, s); rc != kOk) return rc;
    const HttpReply r = s.session->authed("GET", "/v1/balance", Json::Value());
    if (!r.ok() || !r.body["available_mt"].isInt64())
        return reply_failure(o, r, "cannot read the balance");
    if (o.json) {
        print_json(r.body);
        return kOk;
    }
    const Json::Value& b = r.body;
    std::cout << "Available: " << tokens_text(b["available_mt"].asInt64()) << " tokens ("
              << minutes_text(b["available_ms"].asInt64()) << " min of metered audio)\n";
    std::cout << "Held:      " << tokens_text(b["held_mt"].asInt64())
              << " tokens (open leases; released when settled)\n";
    std::cout << "Price:     " << tokens_text(b["milli_tokens_per_minute"].asInt64())
              << " tokens per minute\n";
    return kOk;
}

int cmd_usage(const Options& o) {
    Signed s;
    if (const int rc = open_session(o, s); rc != kOk) return rc;
    const std::int64_t since = static_cast<std::int64_t>(std::time(nullptr)) - o.days * 86400LL;
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> days;  // day → (ms, mt)
    std::string before;
    int items = 0;
    for (int page = 0; page < 50; ++page) {
        const HttpReply r =
            s.session->authed("GET", "/v1/usage?limit=1000" + before, Json::Value());
        if (!r.ok() || !r.body["items"].isArray()) return reply_failure(o, r, "cannot read usage");
        const Json::Value& list = r.body["items"];
        bool older = false;
        for (const auto& it : list) {
            if (!it["at"].isInt64() || !it["used_ms"].isInt64() || !it["posted_mt"].isInt64()) {
                return fail(o, kUnreachable, "the server's usage reply is malformed");
            }
            if (it["at"].asInt64() < since) {
                older = true;
                break;
            }
            auto& d = days[date_text(it["at"].asInt64(), false)];
            d.first += it["used_ms"].asInt64();
            d.second += it["posted_mt"].asInt64();
            ++items;
        }
        if (older || list.size() < 1000 || !list[list.size() - 1]["at_us"].isInt64()) break;
        before = "&before_us=" + std::to_string(list[list.size() - 1]["at_us"].asInt64());
    }
    if (o.json) {
        Json::Value v;
        v["days"] = Json::Value(Json::arrayValue);
        for (const auto& [day, d] : days) {
            Json::Value row;
            row["day"] = day;
            row["used_ms"] = Json::Int64(d.first);
            row["posted_mt"] = Json::Int64(d.second);
            v["days"].append(row);
        }
        v["settlements"] = items;
        print_json(v);
        return kOk;
    }
    if (days.empty()) {
        std::cout << "No metered use in the last " << o.days << " days.\n";
        return kOk;
    }
    std::int64_t peak = 1, total_ms = 0, total_mt = 0;
    for (const auto& [day, d] : days) peak = std::max(peak, d.first);
    std::printf("%-10s  %9s  %10s\n", "day (UTC)", "minutes", "tokens");
    for (const auto& [day, d] : days) {
        const int bar = static_cast<int>((d.first * 30 + peak - 1) / peak);
        std::string bars;
        for (int i = 0; i < bar; ++i) bars += "\u2587";
        std::printf("%-10s  %9s  %10s  %s\n", day.c_str(), minutes_text(d.first).c_str(),
                    tokens_text(d.second).c_str(), bars.c_str());
        total_ms += d.first;
        total_mt += d.second;
    }
    std::printf("%-10s  %9s  %10s\n", "total", minutes_text(total_ms).c_str(),
                tokens_text(total_mt).c_str());
    return kOk;
}

int cmd_devices(const Options& o) {
    Signed s;
    if (const int rc = open_session(o, s); rc != kOk) return rc;
    const HttpReply r = s.session->authed("GET", "/v1/me/sessions", Json::Value());
    if (!r.ok() || !r.body["sessions"].isArray()) return reply_failure(o, r, "cannot list devices");
    if (o.json) {
        print_json(r.body);
        return kOk;
    }
    std::printf("%-3s %-34s %-24s %-16s %-16s %s\n", "", "device", "client", "signed in",
                "last used", "state");
    for (const auto& it : r.body["sessions"]) {
        const std::string state =
            it["revoked_at"].isNull() ? "active" : "ended (" + it["revoke_reason"].asString() + ")";
        std::printf(
            "%-3s %-34s %-24s %-16s %-16s %s\n", it["current"].asBool() ? "*" : "",
            it["device_name"].asString().substr(0, 34).c_str(),
            it["client_id"].asString().substr(0, 24).c_str(),
            it["created_at"].isInt64() ? date_text(it["created_at"].asInt64(), true).c_str() : "",
            it["last_used_at"].isInt64() ? date_text(it["last_used_at"].asInt64(), true).c_str()
                                         : "",
            state.c_str());
    }
    return kOk;
}

int cmd_logout(const Options& o) {
    Signed s;
    s.paths = resolve_paths(o.config_dir);
    s.server = resolve_server_url(o.server_flag, s.paths.config_file());
    if (const std::string bad = check_server_url(s.server); !bad.empty()) {
        return fail(o, kUsageError, bad);
    }
    s.http = std::make_unique<HttpClient>(s.server);
    s.session = std::make_unique<Session>(s.paths, *s.http);
    // A corrupt file is removed like a good one (that is how to get rid of it).
    if (s.session->state() == CredentialsState::missing) {
        return fail(o, kSignedOut, s.session->error());
    }
    HttpReply r;
    if (s.session->signed_in()) {
        r = s.session->authed("DELETE", "/v1/sessions/current", Json::Value());
    } else {
        r.transport_error = s.session->error();
    }
    std::string error;
    FileLock lock;
    if (!lock.lock(s.paths.credentials_lock(), error)) return fail(o, kLocalFile, error);
    if (::unlink(s.paths.credentials_file().c_str()) != 0 && errno != ENOENT) {
        return fail(o, kLocalFile, "cannot remove " + s.paths.credentials_file());
    }
    const bool told = r.ok();
    if (o.json) {
        Json::Value v;
        v["ok"] = true;
        v["server_told"] = told;
        if (!told) v["error"] = r.describe();
        print_json(v);
    } else if (told) {
        std::cout << "Signed out; the session is ended on the server.\n";
    } else {
        std::cout << "Signed out on this machine, but the server could not be told ("
                  << r.describe() << "); remove the device with `stemsphere-account devices` "
                  << "from another machine if needed.\n";
    }
    return kOk;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size()) {
                std::cerr << "stemsphere-account: " << a << " needs a value\n" << kUsage;
                std::exit(kUsageError);
            }
            return args[++i];
        };
        if (a == "-h" || a == "--help") {
            std::cout << kUsage;
            return kOk;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--no-qr") {
            o.qr = false;
        } else if (a == "--server") {
            o.server_flag = value();
        } else if (a == "--config-dir") {
            o.config_dir = value();
        } else if (a == "--days") {
            try {
                o.days = std::stoi(value());
            } catch (const std::exception&) {
                o.days = 0;
            }
            if (o.days < 1 || o.days > 3660) {
                std::cerr << "stemsphere-account: --days wants 1..3660\n";
                return kUsageError;
            }
        } else if (!a.empty() && a[0] != '-' && o.command.empty()) {
            o.command = a;
        } else {
            std::cerr << "stemsphere-account: unknown argument '" << a << "'\n" << kUsage;
            return kUsageError;
        }
    }
    if (o.command == "login") return cmd_login(o);
    if (o.command == "status") return cmd_status(o);
    if (o.command == "balance") return cmd_balance(o);
    if (o.command == "usage") return cmd_usage(o);
    if (o.command == "devices") return cmd_devices(o);
    if (o.command == "logout") return cmd_logout(o);
    std::cerr << (o.command.empty() ? std::string("stemsphere-account: a command is needed\n")
                                    : "stemsphere-account: unknown command '" + o.command + "'\n")
              << kUsage;
    return kUsageError;
}
