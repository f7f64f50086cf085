// The usage journal: an append-only file of checksummed JSON lines, fsync'd before anything it
// records is sent or acknowledged. One file per process (journal/<id>.jnl, flock'ed while the
// process lives); a file nobody holds belongs to a process that ended, and the next client to
// start adopts it and settles what it recorded.
//
// Line format: 16 hex digits of BLAKE2b-64 over the JSON text, one space, the JSON text, "\n".
// A torn last line (a crash in the middle of a write) is dropped: it was never acknowledged.
// Any other bad line is corruption: the file is set aside, never replayed.
#pragma once

#include <json/value.h>

#include <memory>
#include <string>
#include <vector>

namespace stemsphere::client {

class Journal {
  public:
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // A new journal in `dir` holding `header` as its first record; nullptr (and `error`) on
    // failure.
    static std::unique_ptr<Journal> create(const std::string& dir, const Json::Value& header,
                                           std::string& error);

    enum class AdoptStatus { adopted, busy, corrupt, failed };
    struct Adopted {
        AdoptStatus status = AdoptStatus::failed;
        std::unique_ptr<Journal> journal;  // when adopted, or corrupt (locked, to set aside)
        std::vector<Json::Value> records;  // when adopted
        std::string error;                 // when corrupt or failed
        bool dropped_torn_tail = false;
    };
    // Takes over `path` if no live process holds it: reads its records and cuts a torn tail.
    static Adopted adopt(const std::string& path);

    // Appends the records with one write and one fdatasync. False (and `error`) on failure; the
    // records then count as not written.
    bool append(const std::vector<Json::Value>& records, std::string& error);
    bool append(const Json::Value& record, std::string& error) {
        return append(std::vector<Json::Value>{record}, error);
    }
    // Deletes a journal that a crashed process was still creating (a ".new" file holds at most
    // the header) once it is a minute old, unless a live process holds it.
    static void discard_unfinished(const std::string& path);
    // Deletes the file (everything in it is resolved).
    void remove();
    // Moves the file to `dir` (corrupt files are kept for a person to look at).
    bool set_aside(const std::string& dir, std::string& error);

    const std::string& path() const { return path_; }
    std::size_t bytes() const { return size_; }

    // Encodes/decodes one line (exposed for tests that damage files on purpose).
    static std::string encode_line(const Json::Value& record);
    static bool decode_line(const std::string& line, Json::Value& record);

  private:
    Journal(std::string path, int fd, std::size_t size)
        : path_(std::move(path)), fd_(fd), size_(size) {}
    std::string path_;
    int fd_ = -1;
    std::size_t size_ = 0;
};

}  // namespace stemsphere::client
