#include "client/files.h"

#include <fcntl.h>
#include <json/reader.h>
#include <json/writer.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>

namespace stemsphere::client {

namespace {

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

bool fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

Paths resolve_paths(const std::string& explicit_dir) {
    Paths p;
    if (!explicit_dir.empty()) {
        p.dir = explicit_dir;
    } else if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg == '/') {
        p.dir = std::string(xdg) + "/stemsphere";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        p.dir = std::string(home) + "/.config/stemsphere";
    } else {
        p.dir = "/tmp/stemsphere-" + std::to_string(::getuid());
    }
    while (p.dir.size() > 1 && p.dir.back() == '/') p.dir.pop_back();
    return p;
}

bool ensure_private_dir(const std::string& dir, std::string& error) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            error = dir + " exists and is not a directory";
            return false;
        }
        return true;
    }
    const std::string parent = parent_of(dir);
    if (parent != dir && ::stat(parent.c_str(), &st) != 0 && !ensure_private_dir(parent, error)) {
        return false;
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        error = errno_text("cannot create", dir);
        return false;
    }
    return true;
}

bool write_file_atomically(const std::string& path, const std::string& text, std::string& error) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    ::unlink(tmp.c_str());  // a leftover of this pid from an earlier crash
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = errno_text("cannot create", tmp);
        return false;
    }
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = errno_text("cannot write", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return false;
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        error = errno_text("cannot fsync", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return false;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        error = errno_text("cannot rename onto", path);
        ::unlink(tmp.c_str());
        return false;
    }
    fsync_dir(parent_of(path));
    return true;
}

ReadStatus read_small_file(const std::string& path, std::string& text, std::string& error,
                           size_t max_bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return ReadStatus::missing;
        error = errno_text("cannot open", path);
        return ReadStatus::error;
    }
    text.clear();
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = errno_text("cannot read", path);
            ::close(fd);
            return ReadStatus::error;
        }
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > max_bytes) {
            error = path + " is larger than " + std::to_string(max_bytes) + " bytes";
            ::close(fd);
            return ReadStatus::error;
        }
    }
    ::close(fd);
    return ReadStatus::ok;
}

bool parse_json_object(const std::string& text, Json::Value& out, std::string& error) {
    Json::CharReaderBuilder builder;
    Json::CharReaderBuilder::strictMode(&builder.settings_);
    builder.settings_["stackLimit"] = 64;
    const std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
    std::string errs;
    Json::Value value;
    if (!reader->parse(text.data(), text.data() + text.size(), &value, &errs)) {
        error = "not valid JSON (" + errs.substr(0, errs.find('\n')) + ")";
        return false;
    }
    if (!value.isObject()) {
        error = "not a JSON object";
        return false;
    }
    out = std::move(value);
    return true;
}

std::string to_compact_json(const Json::Value& value) {
    Json::StreamWriterBuilder builder;
    builder["indentation"] = "";
    builder["emitUTF8"] = true;
    return Json::writeString(builder, value);
}

FileLock::~FileLock() {
    unlock();
}

bool FileLock::lock(const std::string& path, std::string& error) {
    unlock();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
        error = errno_text("cannot open lock file", path);
        return false;
    }
    while (::flock(fd_, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        error = errno_text("cannot lock", path);
        ::close(fd_);
        fd_ = -1;
        return false;
    }
    return true;
}

void FileLock::unlock() {
    if (fd_ >= 0) {
        ::flock(fd_, LOCK_UN);
        ::close(fd_);
        fd_ = -1;
    }
}

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string make_id(const std::string& prefix) {
    if (sodium_init() < 0) std::abort();
    unsigned char random[10];
    randombytes_buf(random, sizeof(random));
    char hex[2 * sizeof(random) + 1];
    sodium_bin2hex(hex, sizeof(hex), random, sizeof(random));
    std::ostringstream out;
    out << prefix << std::hex << wall_ms() << "-" << hex;
    return out.str();
}

}  // namespace stemsphere::client
