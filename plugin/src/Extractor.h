// The native engine's child analyzer: one per connection, it folds the connection's first
// packets into the state of exactly the selected features (Config.h) and makes a Cato::Info
// vector at each depth, at the decision deadline and at the connection's end, which Output
// (Output.h) logs, raises and publishes.
#pragma once

#include <zeek/analyzer/Analyzer.h>

#include <cstdint>
#include <vector>

#include "Config.h"
#include "Output.h"

namespace plugin::Cato_Native {

// A running statistic of one quantity on one side.
struct Acc {
    uint32_t n = 0;
    uint32_t pos = 0;
    double sum = 0, mean = 0, m2 = 0, min = 0, max = 0, first = 0;
    bool has_first = false;
    std::vector<double> vals; // for medians: reserved once, at the last depth's size
};

class Extractor : public zeek::analyzer::Analyzer {
public:
    explicit Extractor(zeek::Connection* conn);
    ~Extractor() override;

    // Attaches an extractor to a new connection's analyzer tree (when configured).
    static void Attach(zeek::Connection* conn);

    // Decides every connection whose deadline passed at the packet just processed.
    static void DecidePastDeadline();

    // Emits the vectors every open connection has yet to emit, as if it ended now (a replay whose
    // input ran out, while Zeek stays up for the verdicts).
    static void FinishAll();

    // Connections whose analyzer Zeek refused to attach (they get no vectors).
    static uint64_t Refused();

    void Done() override;
    void FlipRoles() override;

protected:
    void DeliverPacket(int len, const u_char* data, bool is_orig, uint64_t seq, const zeek::IP_Hdr* ip,
                       int caplen) override;

private:
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

    bool attached = false; // false until Zeek took the analyzer into the connection's tree
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
