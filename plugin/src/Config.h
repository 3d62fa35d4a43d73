// The native engine's configuration: the feature specs Cato::native_configure passes, read once
// into what each connection's analyzer must keep (Config::Parse), and the Cato::Info columns the
// features fill (Config::Bind). Fixed for the run.
#pragma once

#include <zeek/Type.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace plugin::Cato_Native {

// What one packet can contribute to: the computation kinds of cato's feature catalog.
enum Quantity : uint8_t { Q_SIZE, Q_IAT, Q_TTL, Q_WIN, Q_PAYLOAD, NUM_QUANTITIES };
enum Stat : uint8_t { S_SUM, S_MEAN, S_MIN, S_MAX, S_MEDIAN, S_STD, S_COUNT, S_FIRST };
enum Mark : uint8_t { M_SYN, M_SYNACK, M_ACK, M_DATA, NUM_MARKS };
// Where a statistic looks: the originator's packets, the responder's, or both (the flow).
enum Side : uint8_t { ORIG = 0, RESP = 1, FLOW = 2 };

// Parts of a running statistic, as bits: only those a selection reads are kept.
enum Part : uint16_t {
    P_N = 1, P_SUM = 2, P_MEAN = 4, P_M2 = 8, P_MIN = 16, P_MAX = 32, P_VALS = 64, P_FIRST = 128, P_POS = 256,
};

// One selected feature, as read from its spec (see Config::Parse).
struct Feature {
    enum Kind : uint8_t { STAT, FLAG, SPAN, DURATION, PROTO, PORT, PKTS, IP_BYTES, LOAD, RECORD } kind;
    Quantity q = Q_SIZE;
    Stat stat = S_SUM;
    Side side = ORIG;
    uint8_t bit = 0;
    Mark start = M_SYN, end = M_SYN;
    bool is_string = false;
    std::vector<std::string> path; // RECORD: field names into Zeek's connection record
    int column = -1;                // offset of the feature's field in Cato::Info
    // The field's type: TYPE_STRING for a string feature, TYPE_COUNT or TYPE_DOUBLE otherwise
    // (Config::Bind refuses any other).
    zeek::TypeTag column_type = zeek::TYPE_DOUBLE;
};

// Everything native_configure set; fixed for the run.
struct Config {
    bool on = false;
    std::vector<uint64_t> depths;
    double deadline = 0;
    std::vector<Feature> features;
    // Per side and quantity: the parts to keep (0: the quantity is not tracked there).
    std::array<std::array<uint16_t, NUM_QUANTITIES>, 3> parts{};
    // Bits of the TCP flags byte counted per direction.
    uint8_t flag_mask = 0;
    uint8_t marks = 0; // bit per Mark
    bool per_packet = false;
    bool need_iat = false;
    bool need_tcp = false; // window, flags or marks
    bool need_payload = false;
    size_t num_strings = 0;
    // Test only (environment variable CATO_NATIVE_TEST_REFUSE set when configured): Zeek refuses
    // the analyzer of every connection that is not TCP, as it would one it cannot attach (see
    // Extractor::Attach), so that a test can watch what a refusal does.
    bool test_refuse = false;

    bool Parse(const std::vector<uint64_t>& depths, const std::vector<std::string>& specs, double deadline,
               std::string* err);
    // Binds the script layer: the module of cato's static scripts (``Cato``, or a compiled
    // package's own), as the vectors' output needs it (Output::Bind), and the Info columns of the
    // features (``columns``, in spec order), each checked to have a type its feature can fill.
    bool Bind(const std::string& module, const std::vector<std::string>& columns, std::string* err);

private:
    static bool BindPath(const Feature& f, std::string* err);
};

extern Config config;

// The module the engine is on for (nullptr: off). It serves one module per run: its analyzer, state
// and output are one package's.
const std::string* configured_for();

// Parses and binds module's scripts; on failure the engine stays off and *err says why.
bool configure(const std::string& module, const std::vector<uint64_t>& depths, const std::vector<std::string>& specs,
               const std::vector<std::string>& columns, double deadline, std::string* err);

} // namespace plugin::Cato_Native
