// Files the client keeps on disk: where they live, how they are written (atomically, 0600) and
// locked (flock, so several processes can share one sign-in). No network here.
#pragma once

#include <json/value.h>

#include <optional>
#include <string>

namespace stemsphere::client {

// Everything the client stores lives in one directory (mode 0700).
struct Paths {
    std::string dir;  // $XDG_CONFIG_HOME/stemsphere, ~/.config/stemsphere, or MeterOptions
    std::string config_file() const { return dir + "/config.json"; }
    std::string credentials_file() const { return dir + "/credentials.json"; }
    std::string credentials_lock() const { return dir + "/credentials.lock"; }
    std::string lease_key_file() const { return dir + "/lease-key.json"; }
    std::string journal_dir() const { return dir + "/journal"; }
    std::string corrupt_dir() const { return dir + "/journal/corrupt"; }
};

// `explicit_dir` when set, else $XDG_CONFIG_HOME/stemsphere, else $HOME/.config/stemsphere.
Paths resolve_paths(const std::string& explicit_dir);

// Creates the directory (and parents) with mode 0700. False (and `error`) on failure.
bool ensure_private_dir(const std::string& dir, std::string& error);

// Writes `text` to `path` through a temporary file: O_EXCL 0600, write, fsync, rename, then
// fsync of the directory, so a reader sees the old or the new file, never a mix.
bool write_file_atomically(const std::string& path, const std::string& text, std::string& error);

enum class ReadStatus { ok, missing, error };
ReadStatus read_small_file(const std::string& path, std::string& text, std::string& error,
                           size_t max_bytes = 1 << 20);

// A JSON object from text; false (and `error`) when it is not one. Strict: no comments, no
// trailing garbage, duplicate keys rejected, depth limited.
bool parse_json_object(const std::string& text, Json::Value& out, std::string& error);
std::string to_compact_json(const Json::Value& value);

// An exclusive flock on a lock file, released by the destructor. The lock file is never
// replaced (credentials are renamed over, so the lock cannot be on them).
class FileLock {
  public:
    FileLock() = default;
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    // Blocking; false (and `error`) when the file cannot be opened or locked.
    bool lock(const std::string& path, std::string& error);
    void unlock();

  private:
    int fd_ = -1;
};

// Fresh id for the ledger (client-made idempotency key): "<ms since epoch hex>-<random hex>",
// time-ordered like a UUIDv7 and within the server's [A-Za-z0-9._:-]{1,128}.
std::string make_id(const std::string& prefix);

// Wall clock in milliseconds since the Unix epoch.
std::int64_t wall_ms();

}  // namespace stemsphere::client
