#include "Config.h"

#include <zeek/ID.h>

#include <cstdlib>
#include <sstream>

#include "Output.h"

namespace plugin::Cato_Native {

Config config;

namespace {

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

bool Config::Bind(const std::string& module, const std::vector<std::string>& columns, std::string* err) {
    if ( columns.size() != features.size() ) {
        *err = "one column per feature spec is needed";
        return false;
    }
    if ( ! output.Bind(module, err) )
        return false;
    const auto& info = output.InfoType();
    for ( size_t i = 0; i < features.size(); ++i ) {
        auto& f = features[i];
        if ( (f.column = info->FieldOffset(columns[i].c_str())) < 0 ) {
            *err = module + "::Info has no field " + columns[i];
            return false;
        }
        // Output::SetNumber fills a count or a double; a string feature's value is a string.
        f.column_type = info->GetFieldType(f.column)->Tag();
        if ( f.is_string ? f.column_type != zeek::TYPE_STRING
                         : f.column_type != zeek::TYPE_COUNT && f.column_type != zeek::TYPE_DOUBLE ) {
            *err = "column " + columns[i] + " does not have its feature's type (" +
                   (f.is_string ? "string" : "count or double") + ")";
            return false;
        }
        if ( f.kind == Feature::RECORD && ! BindPath(f, err) )
            return false;
    }
    return true;
}

// A record feature's path must lead through Zeek's connection record to a field the extractor
// can read (Extractor::Value, Extractor::Text), lest a field missing at the first vector be Zeek's
// internal error.
bool Config::BindPath(const Feature& f, std::string* err) {
    std::string path;
    zeek::RecordType* r = zeek::id::connection.get();
    for ( size_t i = 0; i < f.path.size(); ++i ) {
        path += (i ? "$" : "") + f.path[i];
        int at = r->FieldOffset(f.path[i].c_str());
        if ( at < 0 ) {
            *err = "connection has no field " + path;
            return false;
        }
        const auto& t = r->GetFieldType(at);
        if ( i + 1 < f.path.size() ) {
            if ( t->Tag() != zeek::TYPE_RECORD ) {
                *err = "connection$" + path + " is " + zeek::type_name(t->Tag()) + ", not a record";
                return false;
            }
            r = t->AsRecordType();
            continue;
        }
        bool readable = f.is_string ? t->Tag() == zeek::TYPE_STRING
                                    : t->Tag() == zeek::TYPE_COUNT || t->Tag() == zeek::TYPE_INT ||
                                          t->Tag() == zeek::TYPE_DOUBLE || t->Tag() == zeek::TYPE_TIME ||
                                          t->Tag() == zeek::TYPE_INTERVAL;
        if ( ! readable ) {
            *err = "connection$" + path + " is " + zeek::type_name(t->Tag()) + ", not " +
                   (f.is_string ? "a string" : "a number");
            return false;
        }
    }
    return true;
}

const std::string* configured_for() { return config.on ? &output.Module() : nullptr; }

bool configure(const std::string& module, const std::vector<uint64_t>& depths, const std::vector<std::string>& specs,
               const std::vector<std::string>& columns, double deadline, std::string* err) {
    if ( ! config.Parse(depths, specs, deadline, err) || ! config.Bind(module, columns, err) ) {
        config.on = false;
        return false;
    }
    const char* refuse = std::getenv("CATO_NATIVE_TEST_REFUSE");
    config.test_refuse = refuse && *refuse;
    return true;
}

} // namespace plugin::Cato_Native
