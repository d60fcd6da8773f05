// SPDX-License-Identifier: MIT
#pragma once

// The bits of JSON that chrome_tracer writes: strings (escaped, and valid
// UTF-8 whatever the bytes given), integers, and times in microseconds with
// nanosecond digits. Written with std::to_chars, so that no locale (a
// thousands separator, a decimal comma) can change a number.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace braid::detail {

inline void append_json_int(std::string& out, std::int64_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out.append(digits, end);
}

// ns nanoseconds as microseconds: "1234.567", "-0.005".
inline void append_json_micros(std::string& out, std::int64_t ns) {
    char text[32];
    char* p = text;
    if (ns < 0) {
        *p++ = '-';
    }
    // Unsigned, so that the most negative value has a magnitude too.
    const std::uint64_t magnitude =
        ns < 0 ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    p = std::to_chars(p, text + sizeof text, magnitude / 1000).ptr;
    const auto fraction = static_cast<unsigned>(magnitude % 1000);
    p[0] = '.';
    p[1] = static_cast<char>('0' + fraction / 100);
    p[2] = static_cast<char>('0' + fraction / 10 % 10);
    p[3] = static_cast<char>('0' + fraction % 10);
    out.append(text, p + 4);
}

// The length of the well-formed UTF-8 sequence at the start of s, or 0 when
// it is not one (a stray continuation byte, a truncated or overlong sequence,
// a surrogate, a code point past U+10FFFF).
inline std::size_t utf8_sequence_length(std::string_view s) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char lead = byte(0);
    std::size_t length = 0;
    unsigned char low = 0x80; // the range of the second byte
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        low = lead == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
        high = lead == 0xED ? 0x9F : 0xBF; // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        low = lead == 0xF0 ? 0x90 : 0x80;
        high = lead == 0xF4 ? 0x8F : 0xBF; // nothing past U+10FFFF
    } else {
        return 0;
    }
    if (s.size() < length || byte(1) < low || byte(1) > high) {
        return 0;
    }
    for (std::size_t i = 2; i < length; ++i) {
        if (byte(i) < 0x80 || byte(i) > 0xBF) {
            return 0;
        }
    }
    return length;
}

// s as a JSON string, quotes included. Bytes that are not UTF-8 become
// U+FFFD, so that the file stays valid JSON whatever a task is named.
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t plain = 0; // s[plain, i) is copied as it is, in one append
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        if (c >= 0x80) {
            if (const std::size_t length = utf8_sequence_length(s.substr(i)); length != 0) {
                i += length;
                continue;
            }
        }
        out.append(s.substr(plain, i - plain));
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c >= 0x80) {
                out += "\xEF\xBF\xBD";
            } else { // a control character, or DEL: legal JSON, but not to every reader
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xF];
            }
        }
        plain = ++i;
    }
    out.append(s.substr(plain));
    out += '"';
}

} // namespace braid::detail
