#include "client/journal.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "client/files.h"

namespace stemsphere::client {

namespace {

std::string checksum(const std::string& text) {
    unsigned char digest[8];
    crypto_generichash(digest, sizeof(digest), reinterpret_cast<const unsigned char*>(text.data()),
                       text.size(), nullptr, 0);
    char hex[17];
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    return std::string(hex, 16);
}

void fsync_dir_of(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

bool write_all(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

Journal::~Journal() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

std::string Journal::encode_line(const Json::Value& record) {
    const std::string text = to_compact_json(record);
    return checksum(text) + " " + text + "\n";
}

bool Journal::decode_line(const std::string& line, Json::Value& record) {
    if (line.size() < 18 || line[16] != ' ') return false;
    const std::string text = line.substr(17);
    if (checksum(text) != line.substr(0, 16)) return false;
    std::string error;
    return parse_json_object(text, record, error) && record["t"].isString();
}

std::unique_ptr<Journal> Journal::create(const std::string& dir, const Json::Value& header,
                                         std::string& error) {
    if (sodium_init() < 0) {
        error = "libsodium failed to start";
        return nullptr;
    }
    if (!ensure_private_dir(dir, error)) return nullptr;
    // Built under a name adopters do not look at, locked and given its header, then renamed:
    // another process never sees a journal of ours before we hold its lock.
    const std::string id = make_id("j");
    const std::string path = dir + "/" + id + ".jnl";
    const std::string building = dir + "/." + id + ".new";
    const int fd =
        ::open(building.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = "cannot create the usage journal " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        error = "cannot lock the usage journal " + path + ": " + std::strerror(errno);
        ::close(fd);
        ::unlink(building.c_str());
        return nullptr;
    }
    std::unique_ptr<Journal> j(new Journal(building, fd, 0));
    if (!j->append(header, error)) {
        ::unlink(building.c_str());
        return nullptr;
    }
    if (::rename(building.c_str(), path.c_str()) != 0) {
        error = "cannot name the usage journal " + path + ": " + std::strerror(errno);
        ::unlink(building.c_str());
        return nullptr;
    }
    j->path_ = path;
    fsync_dir_of(path);
    return j;
}

Journal::Adopted Journal::adopt(const std::string& path) {
    Adopted out;
    if (sodium_init() < 0) {
        out.error = "libsodium failed to start";
        return out;
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        out.error = "cannot open the usage journal " + path + ": " + std::strerror(errno);
        return out;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        out.status = AdoptStatus::busy;  // a live process owns it
        return out;
    }
    std::string text;
    if (read_small_file(path, text, out.error, 64u << 20) != ReadStatus::ok) {
        ::close(fd);
        out.error = "cannot read the usage journal " + path + ": " + out.error;
        return out;
    }
    std::size_t good_end = 0;  // bytes up to the end of the last good line
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) {  // torn tail: the write never finished
            out.dropped_torn_tail = true;
            break;
        }
        Json::Value record;
        if (!decode_line(text.substr(pos, nl - pos), record)) {
            if (nl + 1 == text.size()) {  // a damaged last line: a torn write too
                out.dropped_torn_tail = true;
                break;
            }
            out.status = AdoptStatus::corrupt;
            out.error = "the usage journal " + path + " is corrupt at byte " + std::to_string(pos);
            out.records.clear();
            out.journal.reset(new Journal(path, fd, text.size()));  // held, to be set aside
            return out;
        }
        out.records.push_back(std::move(record));
        pos = nl + 1;
        good_end = pos;
    }
    if (out.records.empty() || out.records[0]["t"].asString() != "begin") {
        out.status = AdoptStatus::corrupt;
        out.error = "the usage journal " + path + " has no header record";
        out.records.clear();
        out.journal.reset(new Journal(path, fd, text.size()));
        return out;
    }
    if (good_end != text.size()) {
        if (::ftruncate(fd, static_cast<off_t>(good_end)) != 0 || ::fdatasync(fd) != 0) {
            ::close(fd);
            out.error = "cannot cut the torn end of " + path + ": " + std::strerror(errno);
            return out;
        }
    }
    out.journal.reset(new Journal(path, fd, good_end));
    out.status = AdoptStatus::adopted;
    return out;
}

bool Journal::append(const std::vector<Json::Value>& records, std::string& error) {
    std::string data;
    for (const auto& r : records) data += encode_line(r);
    if (!write_all(fd_, data) || ::fdatasync(fd_) != 0) {
        error = "cannot write the usage journal " + path_ + ": " + std::strerror(errno);
        // Cut a partial write so the next append starts on a fresh line.
        if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
            error += " (and cannot cut the partial write)";
        }
        return false;
    }
    size_ += data.size();
    return true;
}

void Journal::discard_unfinished(const std::string& path) {
    struct stat st {};
    // Young ones may be between their creation and their lock in another process.
    if (::stat(path.c_str(), &st) != 0 || st.st_mtime > ::time(nullptr) - 60) return;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(path.c_str());
    ::close(fd);
}

void Journal::remove() {
    ::unlink(path_.c_str());
    fsync_dir_of(path_);
}

bool Journal::set_aside(const std::string& dir, std::string& error) {
    if (!ensure_private_dir(dir, error)) return false;
    const auto slash = path_.rfind('/');
    const std::string target = dir + "/" + path_.substr(slash + 1);
    if (::rename(path_.c_str(), target.c_str()) != 0) {
        error = "cannot move " + path_ + " aside: " + std::strerror(errno);
        return false;
    }
    fsync_dir_of(target);
    path_ = target;
    return true;
}

}  // namespace stemsphere::client
