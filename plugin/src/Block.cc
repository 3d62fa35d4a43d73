#include "Block.h"

#include <cstring>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "cato's blocks are little-endian, as the host is here");

namespace plugin::Cato_Native {

namespace {

const char MAGIC[4] = {'C', 'A', 'T', 'O'};
const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const std::string& in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(in[k])); };
    for ( ; i + 3 <= in.size(); i += 3 ) {
        uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        out += {B64[v >> 18], B64[(v >> 12) & 63], B64[(v >> 6) & 63], B64[v & 63]};
    }
    if ( size_t left = in.size() - i ) {
        uint32_t v = byte(i) << 16 | (left == 2 ? byte(i + 1) << 8 : 0);
        out += {B64[v >> 18], B64[(v >> 12) & 63], left == 2 ? B64[(v >> 6) & 63] : '=', '='};
    }
    return out;
}

bool unbase64(const std::string& in, std::string* out) {
    static int8_t value[256];
    static bool ready = false;
    if ( ! ready ) {
        std::memset(value, -1, sizeof(value));
        for ( int k = 0; k < 64; ++k )
            value[static_cast<uint8_t>(B64[k])] = static_cast<int8_t>(k);
        ready = true;
    }
    if ( in.size() % 4 )
        return false;
    out->clear();
    out->reserve(in.size() / 4 * 3);
    for ( size_t i = 0; i < in.size(); i += 4 ) {
        int pad = (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=');
        if ( pad && i + 4 != in.size() )
            return false;
        uint32_t v = 0;
        for ( int k = 0; k < 4 - pad; ++k ) {
            int d = value[static_cast<uint8_t>(in[i + k])];
            if ( d < 0 )
                return false;
            v |= static_cast<uint32_t>(d) << (18 - 6 * k);
        }
        out->push_back(static_cast<char>(v >> 16));
        if ( pad < 2 )
            out->push_back(static_cast<char>((v >> 8) & 0xff));
        if ( pad < 1 )
            out->push_back(static_cast<char>(v & 0xff));
    }
    return true;
}

template<typename T>
void put(std::string* s, T v) {
    s->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

void put_text(std::string* s, const std::string& t) {
    put<uint16_t>(s, static_cast<uint16_t>(t.size()));
    s->append(t);
}

// Reads a block front to back; every read checks that the bytes are there.
struct Reader {
    const std::string& s;
    size_t at = 0;
    std::string* err;

    bool fail(const std::string& what) {
        *err = what + " (at byte " + std::to_string(at) + " of " + std::to_string(s.size()) + ")";
        return false;
    }
    bool bytes(void* to, size_t n, const char* what) {
        if ( s.size() - at < n )
            return fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes");
        std::memcpy(to, s.data() + at, n);
        at += n;
        return true;
    }
    bool text(std::string* t, const char* what) {
        uint16_t len;
        if ( ! bytes(&len, sizeof(len), what) )
            return false;
        t->resize(len);
        return bytes(t->data(), len, what);
    }
};

} // namespace

void VectorBlock::Reset(size_t arg_n_features, const std::string& arg_schema) {
    n = 0;
    n_features = arg_n_features;
    schema = arg_schema;
    features.clear();
    uids.clear();
    orig_h.clear();
    resp_h.clear();
    orig_p.clear();
    resp_p.clear();
    proto.clear();
}

bool VectorBlock::Add(const std::string& uid, const Endpoints& e, const float* values) {
    if ( uid.size() > UID_WIDTH )
        return false;
    features.insert(features.end(), values, values + n_features);
    uids.append(uid);
    uids.append(UID_WIDTH - uid.size(), '\0');
    orig_h.append(reinterpret_cast<const char*>(e.orig_h), 16);
    resp_h.append(reinterpret_cast<const char*>(e.resp_h), 16);
    orig_p.push_back(e.orig_p);
    resp_p.push_back(e.resp_p);
    proto.push_back(e.proto);
    ++n;
    return true;
}

std::string VectorBlock::Encode() const {
    std::string s;
    s.reserve(32 + schema.size() + n * (n_features * 4 + UID_WIDTH + 37));
    s.append(MAGIC, 4);
    put<uint8_t>(&s, BLOCK_VERSION);
    put<uint8_t>(&s, VECTORS);
    put<uint32_t>(&s, static_cast<uint32_t>(n));
    put_text(&s, schema);
    put<uint16_t>(&s, static_cast<uint16_t>(n_features));
    s.append(uids);
    s.append(orig_h);
    s.append(resp_h);
    s.append(reinterpret_cast<const char*>(orig_p.data()), n * 2);
    s.append(reinterpret_cast<const char*>(resp_p.data()), n * 2);
    s.append(reinterpret_cast<const char*>(proto.data()), n);
    s.append(reinterpret_cast<const char*>(features.data()), features.size() * 4);
    return base64(s);
}

bool DecodeVerdicts(const std::string& text, VerdictBlock* out, std::string* err) {
    std::string s;
    if ( ! unbase64(text, &s) ) {
        *err = "not base64";
        return false;
    }
    Reader r{s, 0, err};
    char magic[4];
    uint8_t version, kind;
    uint32_t n;
    uint16_t n_labels;
    if ( ! r.bytes(magic, 4, "the magic") || ! r.bytes(&version, 1, "the version") || ! r.bytes(&kind, 1, "the kind") ||
         ! r.bytes(&n, 4, "the count") )
        return false;
    if ( std::memcmp(magic, MAGIC, 4) != 0 )
        return r.fail("not a cato block");
    if ( version != BLOCK_VERSION )
        return r.fail("block version " + std::to_string(version) + ", this plugin reads " +
                      std::to_string(BLOCK_VERSION));
    if ( kind != VERDICTS )
        return r.fail("not a verdict block");
    if ( ! r.text(&out->schema, "the schema") || ! r.bytes(&n_labels, 2, "the label count") )
        return false;
    out->labels.resize(n_labels);
    for ( auto& label : out->labels )
        if ( ! r.text(&label, "a label") )
            return false;
    // Columns: uid, orig_h, resp_h, orig_p, resp_p, proto, label, score (n of each).
    const size_t row = UID_WIDTH + 16 + 16 + 2 + 2 + 1 + 2 + 4;
    if ( (s.size() - r.at) != static_cast<size_t>(n) * row )
        return r.fail(std::to_string(n) + " verdicts need " + std::to_string(static_cast<size_t>(n) * row) +
                      " bytes of columns, not " + std::to_string(s.size() - r.at));
    const char* base = s.data() + r.at;
    const char* uid = base;
    const char* orig_h = uid + n * UID_WIDTH;
    const char* resp_h = orig_h + n * 16;
    const char* orig_p = resp_h + n * 16;
    const char* resp_p = orig_p + n * 2;
    const char* proto = resp_p + n * 2;
    const char* label = proto + n;
    const char* score = label + n * 2;
    out->verdicts.resize(n);
    for ( uint32_t i = 0; i < n; ++i ) {
        auto& v = out->verdicts[i];
        const char* u = uid + i * UID_WIDTH;
        v.uid.assign(u, strnlen(u, UID_WIDTH));
        std::memcpy(v.id.orig_h, orig_h + i * 16, 16);
        std::memcpy(v.id.resp_h, resp_h + i * 16, 16);
        std::memcpy(&v.id.orig_p, orig_p + i * 2, 2);
        std::memcpy(&v.id.resp_p, resp_p + i * 2, 2);
        v.id.proto = static_cast<uint8_t>(proto[i]);
        std::memcpy(&v.label, label + i * 2, 2);
        std::memcpy(&v.score, score + i * 4, 4);
        if ( v.label >= n_labels ) {
            *err = "verdict " + std::to_string(i) + " has label " + std::to_string(v.label) + " of " +
                   std::to_string(n_labels);
            return false;
        }
    }
    return true;
}

} // namespace plugin::Cato_Native
