// The native engine's child analyzer: one per connection, it folds the connection's first
// packets into the state of exactly the selected features and makes a Cato::Info vector at
// each depth, at the decision deadline and at the connection's end (logged, raised as
// Cato::vector_ready and published in batches, as cato's static scripts do).
#pragma once

#include <zeek/Type.h>
#include <zeek/analyzer/Analyzer.h>

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

// A running statistic of one quantity on one side.
struct Acc {
    uint32_t n = 0;
    uint32_t pos = 0;
    double sum = 0, mean = 0, m2 = 0, min = 0, max = 0, first = 0;
    bool has_first = false;
    std::vector<double> vals; // for medians: reserved once, at the last depth's size
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

    bool Parse(const std::vector<uint64_t>& depths, const std::vector<std::string>& specs, double deadline,
               std::string* err);
    // Resolves the Cato::Info columns of the features (``columns``, in spec order) and the
    // script-level options and events the vectors go to.
    bool Bind(const std::vector<std::string>& columns, std::string* err);
};

extern Config config;

bool configure(const std::vector<uint64_t>& depths, const std::vector<std::string>& specs,
               const std::vector<std::string>& columns, double deadline, std::string* err);

// Publishes the vectors waiting for their batch to fill now, as Cluster::publish(Cato::vector_topic,
// Cato::vector_batch, vectors) would.
void flush_vectors();

class Extractor : public zeek::analyzer::Analyzer {
public:
    explicit Extractor(zeek::Connection* conn);
    ~Extractor() override { Unpend(); }

    // Attaches an extractor to a new connection's analyzer tree (when configured).
    static void Attach(zeek::Connection* conn);

    // Decides every connection whose deadline passed at the packet just processed.
    static void DecidePastDeadline();

    // Publishes the waiting vectors once they waited Cato::publish_max_wait.
    static void FlushIfDue();

    void Done() override;
    void FlipRoles() override;

protected:
    void DeliverPacket(int len, const u_char* data, bool is_orig, uint64_t seq, const zeek::IP_Hdr* ip,
                       int caplen) override;

private:
    enum Decision : uint8_t { DEPTH = 0, DEADLINE = 1, END = 2 };

    void Observe(bool is_orig, const zeek::IP_Hdr* ip);
    void DeadlineTimer(double t);
    // Emits the vectors of every depth not yet emitted, made from what was seen.
    void Finish(Decision by, double after);
    void Emit(uint64_t depth, Decision by, double after);
    double Value(const Feature& f, zeek::RecordValPtr& conn_val) const;
    zeek::ValPtr Text(const Feature& f, zeek::RecordValPtr& conn_val) const;
    void Unpend();
    // decided_after of a vector decided at the deadline.
    double AtDeadline() const;

    uint64_t pkts = 0;
    int ip_proto = -1; // the IP protocol of the first packet (for transports Zeek has no analyzer of)
    uint64_t dir_pkts[2] = {0, 0};
    uint64_t dir_ip_bytes[2] = {0, 0};
    size_t next_depth = 0;
    bool deadline_due = false;
    Acc acc[3][NUM_QUANTITIES];
    double last[3] = {0, 0, 0}; // time of the side's last packet, for inter-arrival times
    bool has_last[3] = {false, false, false};
    uint32_t flags_seen[2][8] = {};
    double mark_time[NUM_MARKS] = {};
    uint8_t marks_seen = 0;
};

} // namespace plugin::Cato_Native
