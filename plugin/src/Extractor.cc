#include "Extractor.h"

#include <zeek/Conn.h>
#include <zeek/IP.h>
#include <zeek/Reporter.h>
#include <zeek/RunState.h>
#include <zeek/Val.h>
#include <zeek/iosource/Packet.h>
#include <zeek/iosource/PktSrc.h>
#include <zeek/packet_analysis/protocol/tcp/TCPSessionAdapter.h>

#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <algorithm>
#include <unordered_set>
#include <cmath>
#include <limits>

namespace plugin::Cato_Native {

namespace {

constexpr double NaN = std::numeric_limits<double>::quiet_NaN();

// The packet the packet source is processing: the whole frame, whatever tunnel the connection is in
// (get_current_packet_ts() and get_current_packet_header() read it too).
const zeek::Packet* current_frame() {
    const zeek::Packet* p = nullptr;
    if ( auto* src = zeek::run_state::detail::current_packet_source() )
        src->GetCurrentPacket(&p);
    return p;
}

// Connections whose deadline passed at the packet being processed.
std::vector<Extractor*> past_deadline;

// Connections whose analyzer Zeek refused.
uint64_t refused = 0;

// Every extractor alive (for FinishAll).
std::unordered_set<Extractor*> alive;

// Folds value v into a running statistic, keeping the parts p (the order of cato.codegen's _acc_update).
inline void update(Acc& a, uint16_t p, double v) {
    if ( (p & P_FIRST) && ! a.has_first ) {
        a.first = v;
        a.has_first = true;
    }
    if ( (p & P_POS) && v > 0.0 )
        ++a.pos;
    if ( p & P_N )
        ++a.n;
    if ( p & P_SUM )
        a.sum += v;
    if ( p & P_MEAN ) {
        double delta = v - a.mean;
        a.mean += delta / a.n;
        if ( p & P_M2 )
            a.m2 += delta * (v - a.mean);
    }
    if ( (p & P_MIN) && (a.n == 1 || v < a.min) )
        a.min = v;
    if ( (p & P_MAX) && (a.n == 1 || v > a.max) )
        a.max = v;
    if ( p & P_VALS )
        a.vals.push_back(v);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size(), mid = n / 2;
    return n % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2.0;
}

} // namespace

Extractor::Extractor(zeek::Connection* conn) : zeek::analyzer::Analyzer("CATO_NATIVE", conn) {
    alive.insert(this);
    uint64_t last_depth = config.depths.back();
    for ( auto& side : acc )
        for ( int q = 0; q < NUM_QUANTITIES; ++q )
            if ( config.parts[&side - acc][q] & P_VALS )
                side[q].vals.reserve(last_depth);
}

void Extractor::Attach(zeek::Connection* conn) {
    if ( ! config.on )
        return;

    // The connection's UID is drawn when Zeek first builds its record; draw it now, in the order
    // connections start, as the script engine's new_connection does.
    if ( ! conn->GetUID() )
        conn->SetUID(zeek::UID(zeek::detail::bits_per_uid));

    auto* root = conn->GetSessionAdapter();
    if ( ! root )
        return;
    auto* x = new Extractor(conn);
    if ( conn->ConnTransport() == TRANSPORT_TCP ) {
        // A packet child, as ConnSize: it sees every packet after TCP has processed it.
        static_cast<zeek::packet_analysis::TCP::TCPSessionAdapter*>(root)->AddChildPacketAnalyzer(x);
        x->attached = true;
        x->Init();
    }
    else {
        if ( config.test_refuse )
            root->PreventChildren(x->GetAnalyzerTag());
        // Zeek refuses a child when the tree is finishing or being removed, when it has one of the
        // tag already or when the tag is prevented there: it calls the child's Done() (which then
        // emits nothing, attached being false) and deletes it.
        if ( ! root->AddChildAnalyzer(x) ) {
            if ( refused++ == 0 )
                zeek::reporter->Warning("Cato::Native: Zeek refused the native engine's analyzer for connection %s; "
                                        "it and any other refused get no vectors (Cato::native_refused() counts them)",
                                        conn->GetUID().Base62("C").c_str());
            return;
        }
        x->attached = true;
    }
    if ( config.deadline > 0 )
        x->AddTimer(static_cast<zeek::analyzer::analyzer_timer_func>(&Extractor::DeadlineTimer),
                    zeek::run_state::network_time + config.deadline, false, zeek::detail::TIMER_CONN_STATUS_UPDATE);
}

uint64_t Extractor::Refused() { return refused; }

void Extractor::DeliverPacket(int len, const u_char* data, bool is_orig, uint64_t seq, const zeek::IP_Hdr* ip,
                              int caplen) {
    if ( next_depth >= config.depths.size() )
        return;

    int d = is_orig ? ORIG : RESP;
    if ( ip_proto < 0 )
        ip_proto = ip->NextProto();
    ++pkts;
    ++dir_pkts[d];
    dir_ip_bytes[d] += ip->TotalLen();
    if ( config.per_packet )
        Observe(is_orig, ip);

    while ( next_depth < config.depths.size() && config.depths[next_depth] <= pkts ) {
        // The packet's own timestamp (network time never goes back; a capture's clock may).
        const zeek::Packet* frame = current_frame();
        double ts = frame ? frame->time : zeek::run_state::network_time;
        Emit(config.depths[next_depth], DEPTH, ts - Conn()->StartTime());
        ++next_depth;
    }

    if ( next_depth >= config.depths.size() ) {
        // Nothing more to do for this connection: Zeek drops this analyzer at its next packet.
        Unpend();
        Remove();
    }
}

void Extractor::Observe(bool is_orig, const zeek::IP_Hdr* ip) {
    // A packet captured shorter than its headers claim counts toward the depth but adds
    // nothing (Zeek's packet header records have no transport header for it).
    const u_char* ip_start = ip->IP4_Hdr() ? reinterpret_cast<const u_char*>(ip->IP4_Hdr())
                                           : reinterpret_cast<const u_char*>(ip->IP6_Hdr());
    bool truncated = false;
    if ( const zeek::Packet* pkt = current_frame() ) {
        const u_char* cap_end = pkt->data + pkt->cap_len;
        if ( ip_start >= pkt->data && ip_start < cap_end )
            truncated = cap_end - ip_start < static_cast<long>(ip->HdrLen()) + ip->PayloadLen();
    }

    const tcphdr* tp = nullptr;
    const udphdr* up = nullptr;
    auto proto = Conn()->ConnTransport();
    if ( ! truncated ) {
        int next = ip->NextProto();
        if ( next == IPPROTO_TCP && ip->PayloadLen() >= sizeof(tcphdr) )
            tp = reinterpret_cast<const tcphdr*>(ip->Payload());
        else if ( next == IPPROTO_UDP && ip->PayloadLen() >= sizeof(udphdr) )
            up = reinterpret_cast<const udphdr*>(ip->Payload());
    }
    if ( (proto == TRANSPORT_TCP && ! tp) || (proto == TRANSPORT_UDP && ! up) )
        return;

    double now = zeek::run_state::network_time;
    double payload = 0;
    if ( config.need_payload ) {
        if ( tp ) {
            int hdr = tp->th_off * 4, plen = ip->PayloadLen();
            payload = plen >= hdr ? plen - hdr : 0;
        }
        else if ( up ) {
            int ulen = ntohs(up->uh_ulen);
            payload = ulen >= 8 ? ulen - 8 : 0;
        }
    }
    uint8_t flags = tp ? tp->th_flags : 0;

    for ( int side : {is_orig ? ORIG : RESP, FLOW} ) {
        const auto& parts = config.parts[side];
        for ( int q = 0; q < NUM_QUANTITIES; ++q ) {
            uint16_t p = parts[q];
            if ( ! p )
                continue;
            double v;
            switch ( q ) {
                case Q_SIZE: v = ip->TotalLen(); break;
                case Q_TTL: v = ip->TTL(); break;
                case Q_PAYLOAD: v = payload; break;
                case Q_WIN:
                    if ( ! tp )
                        continue;
                    v = ntohs(tp->th_win);
                    break;
                default: // Q_IAT
                    if ( ! has_last[side] ) {
                        has_last[side] = true;
                        last[side] = now;
                        continue;
                    }
                    v = now - last[side];
                    last[side] = now;
            }
            update(acc[side][q], p, v);
        }
    }

    if ( ! tp )
        return;
    if ( uint8_t counted = flags & config.flag_mask ) {
        auto& f = flags_seen[is_orig ? ORIG : RESP];
        for ( int b = 0; b < 8; ++b )
            if ( counted & (1 << b) )
                ++f[b];
    }
    if ( config.marks ) {
        bool syn = flags & TH_SYN, ack = flags & TH_ACK;
        auto mark = [&](Mark m, bool cond) {
            if ( (config.marks & (1 << m)) && cond && ! (marks_seen & (1 << m)) ) {
                marks_seen |= 1 << m;
                mark_time[m] = now;
            }
        };
        mark(M_SYN, syn && ! ack);
        mark(M_SYNACK, syn && ack);
        mark(M_ACK, ack && ! syn && (marks_seen & (1 << M_SYNACK)));
        mark(M_DATA, payload > 0 && (marks_seen & (1 << M_ACK)));
    }
}

void Extractor::FlipRoles() {
    Analyzer::FlipRoles();
    std::swap(dir_pkts[0], dir_pkts[1]);
    std::swap(dir_ip_bytes[0], dir_ip_bytes[1]);
    std::swap(acc[ORIG], acc[RESP]);
    std::swap(last[ORIG], last[RESP]);
    std::swap(has_last[ORIG], has_last[RESP]);
    std::swap(flags_seen[ORIG], flags_seen[RESP]);
}

void Extractor::DeadlineTimer(double t) {
    if ( next_depth >= config.depths.size() || deadline_due )
        return;
    // The packet that moved network time past the deadline is yet to be processed, and may be
    // this connection's: decide once it has been (DecidePastDeadline).
    deadline_due = true;
    past_deadline.push_back(this);
}

Extractor::~Extractor() {
    Unpend();
    alive.erase(this);
}

void Extractor::FinishAll() {
    for ( Extractor* x : alive )
        if ( x->attached ) {
            x->Unpend();
            x->Finish(END, x->Conn()->LastTime() - x->Conn()->StartTime());
        }
}

void Extractor::DecidePastDeadline() {
    if ( past_deadline.empty() )
        return;
    auto due = std::move(past_deadline);
    past_deadline.clear();
    for ( Extractor* x : due ) {
        x->deadline_due = false;
        x->Finish(DEADLINE, x->AtDeadline());
    }
}

double Extractor::AtDeadline() const {
    // As cato's static scripts date a vector decided at the deadline (decide_at_deadline): at the
    // deadline, or at the connection's own packet that moved network time past it (on a trace,
    // time may jump far beyond it).
    double duration = Conn()->LastTime() - Conn()->StartTime();
    return duration > config.deadline ? duration : config.deadline;
}

void Extractor::Unpend() {
    if ( ! deadline_due )
        return;
    deadline_due = false;
    past_deadline.erase(std::remove(past_deadline.begin(), past_deadline.end(), this), past_deadline.end());
}

void Extractor::Done() {
    if ( ! attached ) {
        // Zeek refused the analyzer (see Attach): the connection gets no vectors.
        Analyzer::Done();
        return;
    }
    if ( deadline_due ) {
        // The deadline passed at the packet that ended the connection.
        Unpend();
        Finish(DEADLINE, AtDeadline());
    }
    else
        Finish(END, Conn()->LastTime() - Conn()->StartTime());
    Analyzer::Done();
}

void Extractor::Finish(Decision by, double after) {
    while ( next_depth < config.depths.size() ) {
        uint64_t depth = config.depths[next_depth];
        Emit(depth, by == DEADLINE && pkts >= depth ? DEPTH : by, after);
        ++next_depth;
    }
}

double Extractor::Value(const Feature& f, zeek::RecordValPtr& conn_val) const {
    auto* c = Conn();
    switch ( f.kind ) {
        case Feature::STAT: {
            const Acc& a = acc[f.side][f.q];
            switch ( f.stat ) {
                case S_COUNT: return a.pos;
                case S_FIRST: return a.has_first ? a.first : NaN;
                default: break;
            }
            if ( a.n == 0 )
                return NaN;
            switch ( f.stat ) {
                case S_SUM: return a.sum;
                case S_MEAN: return a.mean;
                case S_MIN: return a.min;
                case S_MAX: return a.max;
                case S_MEDIAN: return median(a.vals);
                case S_STD: return std::sqrt(a.m2 / a.n);
                default: return NaN;
            }
        }
        case Feature::FLAG: {
            int b = 0;
            while ( ! (f.bit & (1 << b)) )
                ++b;
            return flags_seen[f.side][b];
        }
        case Feature::SPAN:
            if ( (marks_seen & (1 << f.start)) && (marks_seen & (1 << f.end)) )
                return mark_time[f.end] - mark_time[f.start];
            return NaN;
        case Feature::DURATION: return c->LastTime() - c->StartTime();
        case Feature::PROTO:
            switch ( c->ConnTransport() ) {
                case TRANSPORT_TCP: return IPPROTO_TCP;
                case TRANSPORT_UDP: return IPPROTO_UDP;
                case TRANSPORT_ICMP: return c->OrigAddr().GetFamily() == IPv6 ? double(IPPROTO_ICMPV6) : double(IPPROTO_ICMP);
                default: return ip_proto >= 0 ? ip_proto : NaN;
            }
        case Feature::PORT: return ntohs(f.side == ORIG ? c->OrigPort() : c->RespPort());
        case Feature::PKTS: return dir_pkts[f.side];
        case Feature::IP_BYTES: return dir_ip_bytes[f.side];
        case Feature::LOAD: {
            double duration = c->LastTime() - c->StartTime();
            return duration > 0 ? dir_ip_bytes[f.side] * 8.0 / duration : NaN;
        }
        case Feature::RECORD: {
            if ( ! conn_val )
                conn_val = c->GetVal();
            zeek::RecordVal* r = conn_val.get();
            zeek::ValPtr v;
            for ( size_t i = 0; i < f.path.size(); ++i ) {
                v = r->GetField(f.path[i].c_str());
                if ( ! v )
                    return NaN;
                if ( i + 1 < f.path.size() )
                    r = v->AsRecordVal();
            }
            switch ( v->GetType()->Tag() ) {
                case zeek::TYPE_COUNT: return v->AsCount();
                case zeek::TYPE_INT: return v->AsInt();
                case zeek::TYPE_DOUBLE:
                case zeek::TYPE_TIME:
                case zeek::TYPE_INTERVAL: return v->AsDouble();
                default: return NaN;
            }
        }
    }
    return NaN;
}

zeek::ValPtr Extractor::Text(const Feature& f, zeek::RecordValPtr& conn_val) const {
    if ( ! conn_val )
        conn_val = Conn()->GetVal();
    zeek::RecordVal* r = conn_val.get();
    zeek::ValPtr v;
    for ( size_t i = 0; i < f.path.size() && r; ++i ) {
        v = r->GetField(f.path[i].c_str());
        r = (v && i + 1 < f.path.size()) ? v->AsRecordVal() : nullptr;
    }
    return v && v->GetType()->Tag() == zeek::TYPE_STRING ? v : nullptr;
}


void Extractor::Emit(uint64_t depth, Decision by, double after) {
    auto* c = Conn();
    zeek::RecordValPtr conn_val;
    // The values first (a compact block takes them as they are); the Cato::Info record only when
    // something reads it: the log, a handler of Cato::vector_ready or Cato::publish_policy, or the
    // records form.
    auto& values = output.Values(config.features.size());
    zeek::RecordValPtr info = output.NeedsRecord() ? output.MakeInfo(c, depth, pkts, by, after) : nullptr;
    for ( size_t i = 0; i < config.features.size(); ++i ) {
        const auto& f = config.features[i];
        values[i] = std::numeric_limits<float>::quiet_NaN();
        if ( f.is_string ) {
            if ( info )
                if ( auto v = Text(f, conn_val) )
                    info->Assign(f.column, std::move(v));
            continue;
        }
        double v = Output::ColumnValue(f, Value(f, conn_val));
        if ( std::isnan(v) )
            continue; // does not apply: the column stays unset
        values[i] = static_cast<float>(v);
        if ( info )
            Output::SetNumber(info.get(), f, v);
    }
    output.Send(c, std::move(info), conn_val);
}

} // namespace plugin::Cato_Native
