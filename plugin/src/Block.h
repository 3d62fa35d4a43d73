// cato's compact wire form: a batch of vectors (Zeek -> inference worker) or of verdicts (back) as
// one base64 string, column by column, so that neither side handles a value at a time. The layout
// is declared once, in cato/deploy/block.py (which the worker decodes with numpy); this is its
// C++ side. Base64 keeps the block a plain string on every transport: Broker's binary form, Zeek's
// WebSocket JSON and the cluster backends alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace plugin::Cato_Native {

// The endpoints of a connection as a block carries them: addresses as 16 bytes (IPv4 mapped into
// IPv6), ports in host order, the IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
struct Endpoints {
    uint8_t orig_h[16], resp_h[16];
    uint16_t orig_p, resp_p;
    uint8_t proto;
};

constexpr size_t UID_WIDTH = 24; // Zeek's uids have at most 23 characters ("C" + 2 x 11)
constexpr uint8_t BLOCK_VERSION = 1;
enum BlockKind : uint8_t { VECTORS = 1, VERDICTS = 2 };

// Vectors waiting for their batch to go, column by column.
class VectorBlock {
public:
    void Reset(size_t n_features, const std::string& schema);
    // A vector: false (and nothing added) if the uid is wider than UID_WIDTH. A missing value is NaN.
    bool Add(const std::string& uid, const Endpoints& e, const float* values);
    size_t Size() const { return n; }
    // The block, base64-encoded.
    std::string Encode() const;

private:
    size_t n = 0, n_features = 0;
    std::string schema;
    std::vector<float> features;
    std::string uids, orig_h, resp_h;
    std::vector<uint16_t> orig_p, resp_p;
    std::vector<uint8_t> proto;
};

// One verdict of a decoded verdict block.
struct BlockVerdict {
    std::string uid;
    Endpoints id;
    uint16_t label;
    float score;
};

struct VerdictBlock {
    std::string schema;
    std::vector<std::string> labels;
    std::vector<BlockVerdict> verdicts;
};

// Decodes a base64 verdict block into *out; false, with *err saying what is wrong, for a block
// that is not one (truncated, garbled, another version, a label index out of range).
bool DecodeVerdicts(const std::string& base64, VerdictBlock* out, std::string* err);

} // namespace plugin::Cato_Native
