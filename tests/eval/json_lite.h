#pragma once
// Minimal JSON reader for the metric test vectors (objects, arrays, numbers including the
// Infinity/NaN tokens Python's json module writes, strings, literals). Test-only.
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace stemsphere::eval::test {

struct JsonValue {
    enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
    double number = 0;
    bool boolean = false;
    std::string text;
    std::vector<JsonValue> items;
    std::map<std::string, JsonValue> fields;

    const JsonValue& operator[](const std::string& key) const {
        auto it = fields.find(key);
        if (it == fields.end()) throw std::runtime_error("json: no field " + key);
        return it->second;
    }
    const JsonValue& operator[](size_t i) const { return items.at(i); }
    bool has(const std::string& key) const { return fields.count(key) != 0; }
    std::vector<double> numbers() const {
        std::vector<double> out;
        for (const auto& v : items) out.push_back(v.number);
        return out;
    }
};

class JsonParser {
  public:
    explicit JsonParser(const std::string& text) : s_(text) {}
    JsonValue parse() {
        JsonValue v = value();
        skip();
        if (pos_ != s_.size()) fail("trailing characters");
        return v;
    }

  private:
    [[noreturn]] void fail(const std::string& why) {
        throw std::runtime_error("json: " + why + " at offset " + std::to_string(pos_));
    }
    void skip() {
        while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    bool take(const std::string& token) {
        if (s_.compare(pos_, token.size(), token) == 0) {
            pos_ += token.size();
            return true;
        }
        return false;
    }
    JsonValue value() {
        skip();
        if (pos_ >= s_.size()) fail("unexpected end");
        JsonValue v;
        const char c = s_[pos_];
        if (c == '{') {
            v.kind = JsonValue::Kind::kObject;
            ++pos_;
            skip();
            if (take("}")) return v;
            do {
                skip();
                const std::string key = string();
                skip();
                if (!take(":")) fail("expected ':'");
                v.fields[key] = value();
                skip();
            } while (take(","));
            if (!take("}")) fail("expected '}'");
        } else if (c == '[') {
            v.kind = JsonValue::Kind::kArray;
            ++pos_;
            skip();
            if (take("]")) return v;
            do {
                v.items.push_back(value());
                skip();
            } while (take(","));
            if (!take("]")) fail("expected ']'");
        } else if (c == '"') {
            v.kind = JsonValue::Kind::kString;
            v.text = string();
        } else if (take("true")) {
            v.kind = JsonValue::Kind::kBool;
            v.boolean = true;
        } else if (take("false")) {
            v.kind = JsonValue::Kind::kBool;
        } else if (take("null")) {
        } else {
            v.kind = JsonValue::Kind::kNumber;
            if (take("Infinity")) {
                v.number = std::numeric_limits<double>::infinity();
            } else if (take("-Infinity")) {
                v.number = -std::numeric_limits<double>::infinity();
            } else if (take("NaN")) {
                v.number = std::numeric_limits<double>::quiet_NaN();
            } else {
                const char* begin = s_.c_str() + pos_;
                char* end = nullptr;
                v.number = std::strtod(begin, &end);
                if (end == begin) fail("bad value");
                pos_ += static_cast<size_t>(end - begin);
            }
        }
        return v;
    }
    std::string string() {
        if (!take("\"")) fail("expected string");
        std::string out;
        while (pos_ < s_.size() && s_[pos_] != '"') {
            if (s_[pos_] == '\\') ++pos_;
            out += s_[pos_++];
        }
        if (!take("\"")) fail("unterminated string");
        return out;
    }

    const std::string& s_;
    size_t pos_ = 0;
};

}  // namespace stemsphere::eval::test
