#include "service/usage_chart.h"

#include <algorithm>

#include "service/html.h"

namespace stemsphere::service {

std::vector<DayUsage> usage_per_day(const Json::Value& items, int64_t now_s, int days) {
    constexpr int64_t kDay = 86400;
    const int64_t today = now_s - now_s % kDay;
    std::vector<DayUsage> out(static_cast<size_t>(days));
    for (int i = 0; i < days; ++i)
        out[static_cast<size_t>(i)].day_start_s = today - (days - 1 - i) * kDay;
    for (const auto& item : items) {
        const int64_t at = item["at"].asInt64();
        const int64_t index = (at - at % kDay - out.front().day_start_s) / kDay;
        if (at < out.front().day_start_s || index < 0 || index >= days) continue;
        out[static_cast<size_t>(index)].used_ms += item["used_ms"].asInt64();
        out[static_cast<size_t>(index)].posted_mt += item["posted_mt"].asInt64();
    }
    return out;
}

namespace {

// A "nice" axis maximum (1, 2 or 5 × 10^k) at or above `value`, in milli-tokens.
int64_t nice_ceiling(int64_t value) {
    int64_t step = 1;
    while (true) {
        for (const int64_t m : {1, 2, 5}) {
            if (m * step >= value) return m * step;
        }
        step *= 10;
    }
}

}  // namespace

std::string usage_chart_svg(const std::vector<DayUsage>& days) {
    const int width = 640, height = 240, left = 56, right = 8, top = 12, bottom = 36;
    const int plot_w = width - left - right, plot_h = height - top - bottom;
    int64_t peak = 0;
    for (const auto& d : days) peak = std::max(peak, d.posted_mt);
    const int64_t axis_max = nice_ceiling(std::max<int64_t>(peak, 1000));
    const double slot =
        static_cast<double>(plot_w) / static_cast<double>(std::max<size_t>(days.size(), 1));
    auto y_of = [&](int64_t mt) {
        return top + plot_h -
               static_cast<double>(plot_h) * static_cast<double>(mt) /
                   static_cast<double>(axis_max);
    };
    auto num = [](double v) {
        std::string s = std::to_string(static_cast<int64_t>(v * 10 + (v >= 0 ? 0.5 : -0.5)));
        if (s.size() < 2) s.insert(0, "0");
        return s.substr(0, s.size() - 1) + "." + s.back();
    };
    std::string svg =
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
        std::to_string(width) + " " + std::to_string(height) +
        "\" role=\"img\" aria-labelledby=\"chart-title chart-desc\">"
        "<title id=\"chart-title\">Tokens used per day</title><desc id=\"chart-desc\">";
    int64_t total = 0;
    for (const auto& d : days) total += d.posted_mt;
    svg += esc("Bar chart of the last " + std::to_string(days.size()) + " days; " +
               tokens_text(total) + " tokens in all. The table below lists the same figures.");
    svg += "</desc>";
    for (int i = 0; i <= 4; ++i) {  // grid lines and y labels
        const int64_t mt = axis_max * i / 4;
        const std::string y = num(y_of(mt));
        svg += "<line class=\"grid\" x1=\"" + std::to_string(left) + "\" x2=\"" +
               std::to_string(width - right) + "\" y1=\"" + y + "\" y2=\"" + y + "\"/>";
        svg += "<text class=\"axis\" x=\"" + std::to_string(left - 6) + "\" y=\"" + y +
               "\" text-anchor=\"end\" dominant-baseline=\"middle\">" + esc(tokens_text(mt)) +
               "</text>";
    }
    svg += "<text class=\"axis\" x=\"4\" y=\"" + std::to_string(top + plot_h / 2) +
           "\" transform=\"rotate(-90 10 " + std::to_string(top + plot_h / 2) +
           ")\" text-anchor=\"middle\">tokens</text>";
    for (size_t i = 0; i < days.size(); ++i) {
        const auto& d = days[i];
        const double x = left + slot * static_cast<double>(i) + slot * 0.15;
        const double y = y_of(d.posted_mt);
        const double h = top + plot_h - y;
        svg += "<rect class=\"bar\" x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" +
               num(slot * 0.7) + "\" height=\"" + num(std::max(h, d.posted_mt > 0 ? 1.0 : 0.0)) +
               "\"><title>" +
               esc(utc_text(d.day_start_s, true) + ": " + tokens_text(d.posted_mt) + " tokens, " +
                   duration_text(d.used_ms)) +
               "</title></rect>";
        if (i % 7 == days.size() % 7 || i + 1 == days.size()) {  // a date label each week
            svg += "<text class=\"axis\" x=\"" + num(x + slot * 0.35) + "\" y=\"" +
                   std::to_string(height - bottom + 18) + "\" text-anchor=\"middle\">" +
                   esc(utc_text(d.day_start_s, true).substr(5)) + "</text>";
        }
    }
    svg += "<line class=\"baseline\" x1=\"" + std::to_string(left) + "\" x2=\"" +
           std::to_string(width - right) + "\" y1=\"" + std::to_string(top + plot_h) + "\" y2=\"" +
           std::to_string(top + plot_h) + "\"/></svg>";
    return svg;
}

}  // namespace stemsphere::service
