#include "Extractor.h"

#include <zeek/Conn.h>
#include <zeek/ConnKey.h>
#include <zeek/Event.h>
#include <zeek/EventRegistry.h>
#include <zeek/Func.h>
#include <zeek/ID.h>
#include <zeek/cluster/Backend.h>
#include <zeek/logging/Manager.h>
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
#include <cmath>
#include <limits>
#include <sstream>

#include "cato.bif.h"

namespace plugin::Cato_Native {

Config config;

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

// Where vectors go: Cato::Info records, written to cato.log, raised as Cato::vector_ready and
// published in batches, as cato's static scripts do for the script engine (zeek-scripts/main.zeek).
struct Output {
    zeek::RecordTypePtr info;
    int ts = -1, uid = -1, id = -1, proto = -1, depth = -1, pkts_seen = -1, decided_after = -1, decided_by = -1;
    zeek::EnumTypePtr decision;
    zeek::EnumValPtr log_id;
    zeek::detail::IDPtr log_vectors, publish_vectors, batch_size, max_wait, topic, published;
    zeek::FuncValPtr vector_batch;
    zeek::FuncPtr publish_policy; // Cato::publish_policy, when a script has a handler for it
    zeek::EventHandlerPtr vector_ready;
    zeek::VectorTypePtr batch_type;
    zeek::VectorValPtr pending; // vectors waiting to be published
    double due = 0;             // when they must go at the latest
} out;

const char* const QUANTITIES[] = {"size", "iat", "ttl", "win", "payload"};
const char* const STATS[] = {"sum", "mean", "min", "max", "median", "std", "count", "first"};
const char* const MARKS[] = {"syn", "synack", "ack", "data"};

// The parts of a running statistic that a statistic reads (as cato.codegen's _STAT_PARTS).
uint16_t parts_of(Stat s) {
    switch ( s ) {
        case S_SUM: return P_N | P_SUM;
        case S_MEAN: return P_N | P_MEAN;
        case S_STD: return P_N | P_MEAN | P_M2;
        case S_MIN: return P_N | P_MIN;
        case S_MAX: return P_N | P_MAX;
        case S_MEDIAN: return P_N | P_VALS;
        case S_FIRST: return P_FIRST;
        case S_COUNT: return P_POS;
    }
    return 0;
}

template<size_t N>
int index_of(const char* const (&names)[N], const std::string& s) {
    for ( size_t i = 0; i < N; ++i )
        if ( s == names[i] )
            return static_cast<int>(i);
    return -1;
}

bool side_of(const std::string& s, bool flow_ok, Side* side) {
    if ( s == "orig" )
        *side = ORIG;
    else if ( s == "resp" )
        *side = RESP;
    else if ( s == "both" && flow_ok )
        *side = FLOW;
    else
        return false;
    return true;
}

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

// A spec is one line of words: "stat QUANTITY STAT SIDE", "flag BIT SIDE", "span MARK MARK",
// "duration", "proto", "port SIDE", "pkts SIDE", "ip_bytes SIDE", "load SIDE", or
// "record [string] FIELD[$FIELD...]" (a field of Zeek's connection record).
bool Config::Parse(const std::vector<uint64_t>& arg_depths, const std::vector<std::string>& specs,
                   double arg_deadline, std::string* err) {
    *this = Config();
    if ( arg_depths.empty() ) {
        *err = "no depth given";
        return false;
    }
    for ( size_t i = 0; i < arg_depths.size(); ++i )
        if ( arg_depths[i] == 0 || (i > 0 && arg_depths[i] <= arg_depths[i - 1]) ) {
            *err = "depths must be positive and ascending";
            return false;
        }
    depths = arg_depths;
    deadline = arg_deadline > 0 ? arg_deadline : 0;

    for ( const auto& spec : specs ) {
        std::istringstream in(spec);
        std::vector<std::string> w;
        for ( std::string word; in >> word; )
            w.push_back(word);
        auto bad = [&]() {
            *err = "cannot read feature spec '" + spec + "'";
            return false;
        };
        if ( w.empty() )
            return bad();
        Feature f{};
        const std::string& k = w[0];
        if ( k == "stat" && w.size() == 4 ) {
            int q = index_of(QUANTITIES, w[1]), s = index_of(STATS, w[2]);
            if ( q < 0 || s < 0 || ! side_of(w[3], true, &f.side) )
                return bad();
            f.kind = Feature::STAT;
            f.q = static_cast<Quantity>(q);
            f.stat = static_cast<Stat>(s);
            parts[f.side][f.q] |= parts_of(f.stat);
            per_packet = true;
            need_iat |= f.q == Q_IAT;
            need_tcp |= f.q == Q_WIN;
            need_payload |= f.q == Q_PAYLOAD;
        }
        else if ( k == "flag" && w.size() == 3 ) {
            int bit = std::atoi(w[1].c_str());
            if ( bit <= 0 || bit > 255 || (bit & (bit - 1)) || ! side_of(w[2], false, &f.side) )
                return bad();
            f.kind = Feature::FLAG;
            f.bit = static_cast<uint8_t>(bit);
            flag_mask |= f.bit;
            per_packet = need_tcp = true;
        }
        else if ( k == "span" && w.size() == 3 ) {
            int a = index_of(MARKS, w[1]), b = index_of(MARKS, w[2]);
            if ( a < 0 || b < 0 )
                return bad();
            f.kind = Feature::SPAN;
            f.start = static_cast<Mark>(a);
            f.end = static_cast<Mark>(b);
            marks |= (1 << a) | (1 << b);
            per_packet = need_tcp = true;
        }
        else if ( k == "duration" && w.size() == 1 )
            f.kind = Feature::DURATION;
        else if ( k == "proto" && w.size() == 1 )
            f.kind = Feature::PROTO;
        else if ( (k == "port" || k == "pkts" || k == "ip_bytes" || k == "load") && w.size() == 2 ) {
            if ( ! side_of(w[1], false, &f.side) )
                return bad();
            f.kind = k == "port" ? Feature::PORT : k == "pkts" ? Feature::PKTS : k == "ip_bytes" ? Feature::IP_BYTES : Feature::LOAD;
        }
        else if ( k == "record" && (w.size() == 2 || (w.size() == 3 && w[1] == "string")) ) {
            f.kind = Feature::RECORD;
            f.is_string = w.size() == 3;
            std::string path = w.back();
            for ( size_t start = 0;; ) {
                size_t end = path.find('$', start);
                f.path.push_back(path.substr(start, end - start));
                if ( end == std::string::npos )
                    break;
                start = end + 1;
            }
            if ( f.is_string )
                ++num_strings;
        }
        else
            return bad();
        features.push_back(std::move(f));
    }
    // Marks depend on earlier marks.
    if ( marks & ((1 << M_ACK) | (1 << M_DATA)) )
        marks |= (1 << M_SYNACK) | (1 << M_ACK);
    if ( marks & (1 << M_DATA) )
        need_payload = true;
    on = true;
    return true;
}

bool Config::Bind(const std::vector<std::string>& columns, std::string* err) {
    if ( columns.size() != features.size() ) {
        *err = "one column per feature spec is needed";
        return false;
    }
    out = Output();
    out.info = zeek::id::find_type<zeek::RecordType>("Cato::Info");
    out.decision = zeek::id::find_type<zeek::EnumType>("Cato::Decision");
    out.log_id = zeek::id::find_val<zeek::EnumVal>("Cato::LOG");
    out.log_vectors = zeek::id::find("Cato::log_vectors");
    out.publish_vectors = zeek::id::find("Cato::publish_vectors");
    out.batch_size = zeek::id::find("Cato::publish_batch_size");
    out.max_wait = zeek::id::find("Cato::publish_max_wait");
    out.topic = zeek::id::find("Cato::vector_topic");
    out.published = zeek::id::find("Cato::vectors_published");
    out.vector_batch = zeek::id::find_val<zeek::FuncVal>("Cato::vector_batch");
    if ( ! out.info || ! out.decision || ! out.log_id || ! out.log_vectors || ! out.publish_vectors ||
         ! out.batch_size || ! out.max_wait || ! out.topic || ! out.published || ! out.vector_batch ) {
        *err = "cato's static scripts (module Cato) are not loaded";
        return false;
    }
    auto field = [&](const std::string& name) {
        int i = out.info->FieldOffset(name.c_str());
        if ( i < 0 )
            *err = "Cato::Info has no field " + name;
        return i;
    };
    if ( (out.ts = field("ts")) < 0 || (out.uid = field("uid")) < 0 || (out.id = field("id")) < 0 ||
         (out.proto = field("proto")) < 0 || (out.depth = field("depth")) < 0 ||
         (out.pkts_seen = field("pkts_seen")) < 0 || (out.decided_after = field("decided_after")) < 0 ||
         (out.decided_by = field("decided_by")) < 0 )
        return false;
    for ( size_t i = 0; i < features.size(); ++i ) {
        if ( (features[i].column = field(columns[i])) < 0 )
            return false;
        features[i].column_type = out.info->GetFieldType(features[i].column)->Tag();
        if ( (features[i].column_type == zeek::TYPE_STRING) != features[i].is_string ) {
            *err = "column " + columns[i] + " does not have its feature's type";
            return false;
        }
    }
    if ( auto* h = zeek::event_registry->Lookup("Cato::vector_ready") )
        out.vector_ready = h;
    if ( auto hook = zeek::id::find_func("Cato::publish_policy"); hook && ! hook->GetBodies().empty() )
        out.publish_policy = hook;
    out.batch_type = zeek::make_intrusive<zeek::VectorType>(out.info);
    return true;
}

bool configure(const std::vector<uint64_t>& depths, const std::vector<std::string>& specs,
               const std::vector<std::string>& columns, double deadline, std::string* err) {
    if ( ! config.Parse(depths, specs, deadline, err) || ! config.Bind(columns, err) ) {
        config.on = false;
        return false;
    }
    return true;
}

void flush_vectors() {
    if ( ! out.pending )
        return;
    auto batch = std::move(out.pending);
    out.pending = nullptr;
    // As Cluster::publish(Cato::vector_topic, Cato::vector_batch, batch) does.
    zeek::Args args{batch};
    auto ev = zeek::cluster::backend->MakeClusterEvent(out.vector_batch, zeek::ArgsSpan{args});
    if ( ! ev || ! zeek::cluster::backend->PublishEvent(out.topic->GetVal()->AsStringVal()->ToStdString(), *ev) )
        return;
    out.published->SetVal(zeek::val_mgr->Count(out.published->GetVal()->AsCount() + batch->Size()));
}

Extractor::Extractor(zeek::Connection* conn) : zeek::analyzer::Analyzer("CATO_NATIVE", conn) {
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
        x->Init();
    }
    else if ( ! root->AddChildAnalyzer(x) )
        return;
    if ( config.deadline > 0 )
        x->AddTimer(static_cast<zeek::analyzer::analyzer_timer_func>(&Extractor::DeadlineTimer),
                    zeek::run_state::network_time + config.deadline, false, zeek::detail::TIMER_CONN_STATUS_UPDATE);
}

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

void Extractor::FlushIfDue() {
    if ( out.pending && zeek::run_state::network_time >= out.due )
        flush_vectors();
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
    auto info = zeek::make_intrusive<zeek::RecordVal>(out.info);
    info->AssignTime(out.ts, c->StartTime());
    info->Assign(out.uid, zeek::make_intrusive<zeek::StringVal>(c->GetUID().Base62("C")));
    auto id = zeek::make_intrusive<zeek::RecordVal>(zeek::id::conn_id);
    auto ctx = id->GetField<zeek::RecordVal>(5);
    const_cast<zeek::ConnKey&>(c->Key()).PopulateConnIdVal(*id, *ctx);
    info->Assign(out.id, std::move(id));
    info->Assign(out.proto, zeek::id::transport_proto->GetEnumVal(c->ConnTransport()));
    info->Assign(out.depth, static_cast<zeek_uint_t>(depth));
    info->Assign(out.pkts_seen, static_cast<zeek_uint_t>(pkts));
    info->AssignInterval(out.decided_after, after);
    info->Assign(out.decided_by, out.decision->GetEnumVal(by));

    zeek::RecordValPtr conn_val;
    for ( const auto& f : config.features ) {
        if ( f.is_string ) {
            if ( auto v = Text(f, conn_val) )
                info->Assign(f.column, std::move(v));
            continue;
        }
        double v = Value(f, conn_val);
        if ( std::isnan(v) )
            continue; // does not apply: the column stays unset
        if ( f.column_type == zeek::TYPE_COUNT )
            info->Assign(f.column, static_cast<zeek_uint_t>(std::llrint(v)));
        else
            info->Assign(f.column, v);
    }

    if ( out.log_vectors->GetVal()->AsBool() )
        zeek::log_mgr->Write(out.log_id.get(), info.get());

    // As emit() does: a vector goes out if Cato::publish_policy lets it (a package's verdict side
    // awaits it from then on, or counts it as shed).
    bool publish = out.publish_vectors->GetVal()->AsBool();
    if ( publish && out.publish_policy ) {
        if ( ! conn_val )
            conn_val = c->GetVal();
        auto allowed = out.publish_policy->Invoke(conn_val, info);
        publish = allowed && allowed->AsBool();
    }
    if ( publish ) {
        if ( ! out.pending ) {
            out.pending = zeek::make_intrusive<zeek::VectorVal>(out.batch_type);
            out.due = zeek::run_state::network_time + out.max_wait->GetVal()->AsInterval();
        }
        out.pending->Append(info);
        if ( out.pending->Size() >= out.batch_size->GetVal()->AsCount() )
            flush_vectors();
    }

    if ( out.vector_ready )
        zeek::event_mgr.Enqueue(out.vector_ready, std::move(info));
}

} // namespace plugin::Cato_Native
