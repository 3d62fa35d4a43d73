#include "Output.h"

#include <zeek/Conn.h>
#include <zeek/Desc.h>
#include <zeek/ConnKey.h>
#include <zeek/Event.h>
#include <zeek/EventRegistry.h>
#include <zeek/Func.h>
#include <zeek/Reporter.h>
#include <zeek/RunState.h>
#include <zeek/cluster/Backend.h>
#include <zeek/logging/Manager.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmath>
#include <cstring>
#include <limits>

#include "Config.h"

namespace plugin::Cato_Native {

Output output;

namespace {

std::string a_type(zeek::TypeTag tag) {
    std::string name = zeek::type_name(tag);
    return (std::string("aeiou").find(name[0]) == std::string::npos ? "a " : "an ") + name;
}

// The global called name (of cato's static scripts): a type (is_type) or a value, of kind tag.
zeek::detail::IDPtr lookup(const std::string& name, zeek::TypeTag tag, bool is_type, std::string* err) {
    auto id = zeek::id::find(name);
    if ( ! id ) {
        *err = name + " is not defined: cato's static scripts (module " + name.substr(0, name.find("::")) +
               ") are not loaded";
        return nullptr;
    }
    if ( id->IsType() != is_type || ! id->GetType() || id->GetType()->Tag() != tag || (! is_type && ! id->GetVal()) ) {
        *err = name + " is not " + a_type(tag) + (is_type ? " type" : " value");
        return nullptr;
    }
    return id;
}

// The functions of flavor f called name.
zeek::detail::IDPtr lookup_func(const std::string& name, zeek::FunctionFlavor f, std::string* err) {
    auto id = lookup(name, zeek::TYPE_FUNC, false, err);
    if ( id && id->GetType()->AsFuncType()->Flavor() != f ) {
        *err = name + " is not " + (f == zeek::FUNC_FLAVOR_EVENT ? "an event" : "a hook");
        return nullptr;
    }
    return id;
}

} // namespace

bool Output::Bind(const std::string& module_name, std::string* err) {
    *this = Output();
    module = module_name;
    // A name of the module, as the error messages say it.
    auto m = [&](const char* name) { return module + "::" + name; };
    zeek::detail::IDPtr info_id, decision_id, log_id_id, vector_batch_id, policy_id;
    if ( ! (info_id = lookup(m("Info"), zeek::TYPE_RECORD, true, err)) ||
         ! (decision_id = lookup(m("Decision"), zeek::TYPE_ENUM, true, err)) ||
         ! (log_id_id = lookup(m("LOG"), zeek::TYPE_ENUM, false, err)) ||
         ! (log_vectors = lookup(m("log_vectors"), zeek::TYPE_BOOL, false, err)) ||
         ! (publish_vectors = lookup(m("publish_vectors"), zeek::TYPE_BOOL, false, err)) ||
         ! (batch_size = lookup(m("publish_batch_size"), zeek::TYPE_COUNT, false, err)) ||
         ! (max_wait = lookup(m("publish_max_wait"), zeek::TYPE_INTERVAL, false, err)) ||
         ! (topic = lookup(m("vector_topic"), zeek::TYPE_STRING, false, err)) ||
         ! (published = lookup(m("vectors_published"), zeek::TYPE_COUNT, false, err)) ||
         ! (vector_batch_id = lookup_func(m("vector_batch"), zeek::FUNC_FLAVOR_EVENT, err)) )
        return false;
    info = zeek::cast_intrusive<zeek::RecordType>(info_id->GetType());
    decision = zeek::cast_intrusive<zeek::EnumType>(decision_id->GetType());
    log_id = zeek::cast_intrusive<zeek::EnumVal>(log_id_id->GetVal());
    vector_batch = zeek::cast_intrusive<zeek::FuncVal>(vector_batch_id->GetVal());

    // The values of Cato::Decision, by name (not by their order).
    const char* const decision_names[NUM_DECISIONS] = {"DEPTH", "DEADLINE", "END"};
    for ( int d = 0; d < NUM_DECISIONS; ++d )
        if ( (decision_value[d] = decision->Lookup(module, decision_names[d])) < 0 ) {
            *err = m("Decision") + " has no value " + m(decision_names[d]);
            return false;
        }

    // The fixed columns of Cato::Info, with the types MakeInfo gives them.
    auto column = [&](const char* name, zeek::TypeTag tag, const zeek::TypePtr& type, int* at) {
        if ( (*at = info->FieldOffset(name)) < 0 ) {
            *err = m("Info") + " has no field " + name;
            return false;
        }
        const auto& t = info->GetFieldType(*at);
        if ( t->Tag() != tag || (type && ! zeek::same_type(t, type)) ) {
            *err = m("Info") + "$" + name + " is not of type " +
                   (type ? zeek::obj_desc_short(type.get()) : std::string(zeek::type_name(tag)));
            return false;
        }
        return true;
    };
    if ( ! column("ts", zeek::TYPE_TIME, nullptr, &ts) || ! column("uid", zeek::TYPE_STRING, nullptr, &uid) ||
         ! column("id", zeek::TYPE_RECORD, zeek::id::conn_id, &id) ||
         ! column("proto", zeek::TYPE_ENUM, zeek::id::transport_proto, &proto) ||
         ! column("depth", zeek::TYPE_COUNT, nullptr, &depth) ||
         ! column("pkts_seen", zeek::TYPE_COUNT, nullptr, &pkts_seen) ||
         ! column("decided_after", zeek::TYPE_INTERVAL, nullptr, &decided_after) ||
         ! column("decided_by", zeek::TYPE_ENUM, decision, &decided_by) )
        return false;

    // conn_id as MakeInfo fills it: Zeek's IP connection keys (IPBasedConnKey::DoPopulateConnIdVal)
    // set its first five fields by position, and the ctx record, found here by name, is passed
    // to the key for it to fill.
    struct {
        const char* name;
        zeek::TypeTag tag;
    } const conn_id_fields[] = {{"orig_h", zeek::TYPE_ADDR}, {"orig_p", zeek::TYPE_PORT}, {"resp_h", zeek::TYPE_ADDR},
                                {"resp_p", zeek::TYPE_PORT}, {"proto", zeek::TYPE_COUNT}};
    const auto& conn_id = zeek::id::conn_id;
    for ( int i = 0; i < 5; ++i ) {
        const auto& f = conn_id_fields[i];
        if ( conn_id->NumFields() <= i || std::string(conn_id->FieldName(i)) != f.name ||
             conn_id->GetFieldType(i)->Tag() != f.tag ) {
            *err = std::string("conn_id's field ") + std::to_string(i) + " is not " + f.name + ": " +
                   zeek::type_name(f.tag) + " (the layout Zeek's connection keys fill)";
            return false;
        }
    }
    if ( (id_ctx = conn_id->FieldOffset("ctx")) < 0 ||
         ! zeek::same_type(conn_id->GetFieldType(id_ctx), zeek::id::conn_id_ctx) ) {
        *err = "conn_id has no field ctx: conn_id_ctx (Zeek's connection keys fill it)";
        return false;
    }

    // The form batches go in: Cato::vector_form, a Cato::VectorForm (RECORDS or COMPACT).
    zeek::detail::IDPtr form_id, block_id;
    if ( ! (form_id = lookup(m("vector_form"), zeek::TYPE_ENUM, false, err)) ||
         ! (block_id = lookup_func(m("vector_block"), zeek::FUNC_FLAVOR_EVENT, err)) )
        return false;
    auto form_type = form_id->GetType()->AsEnumType();
    auto compact_value = form_type->Lookup(module, "COMPACT");
    if ( compact_value < 0 ) {
        *err = m("VectorForm") + " has no value " + m("COMPACT");
        return false;
    }
    compact = form_id->GetVal()->AsEnum() == compact_value;
    vector_block = zeek::cast_intrusive<zeek::FuncVal>(block_id->GetVal());
    // A compiled package's schema hash (its verdict side sets it): the worker checks it.
    if ( auto schema_id = zeek::id::find(m("schema")); schema_id && schema_id->GetVal() &&
                                                          schema_id->GetType()->Tag() == zeek::TYPE_STRING )
        schema = schema_id->GetVal()->AsStringVal()->ToStdString();

    if ( auto* h = zeek::event_registry->Lookup(m("vector_ready")) )
        vector_ready = h;
    if ( ! (policy_id = lookup_func(m("publish_policy"), zeek::FUNC_FLAVOR_HOOK, err)) )
        return false;
    if ( auto hook = policy_id->GetVal()->AsFuncVal()->AsFuncPtr(); ! hook->GetBodies().empty() )
        publish_policy = hook;
    if ( ! (policy_id = lookup_func(m("admit_vector"), zeek::FUNC_FLAVOR_HOOK, err)) )
        return false;
    if ( auto hook = policy_id->GetVal()->AsFuncVal()->AsFuncPtr(); ! hook->GetBodies().empty() )
        admit_vector = hook;
    batch_type = zeek::make_intrusive<zeek::VectorType>(info);
    return true;
}

zeek::RecordValPtr Output::MakeInfo(zeek::Connection* c, uint64_t arg_depth, uint64_t arg_pkts_seen, Decision by,
                                    double after) const {
    auto rec = zeek::make_intrusive<zeek::RecordVal>(info);
    rec->AssignTime(ts, c->StartTime());
    rec->Assign(uid, zeek::make_intrusive<zeek::StringVal>(c->GetUID().Base62("C")));
    auto idv = zeek::make_intrusive<zeek::RecordVal>(zeek::id::conn_id);
    auto ctx = idv->GetField<zeek::RecordVal>(id_ctx);
    if ( ! ctx ) { // Zeek 8.0's conn_id gives ctx a &default: it is there already
        ctx = zeek::make_intrusive<zeek::RecordVal>(zeek::id::conn_id_ctx);
        idv->Assign(id_ctx, ctx);
    }
    // As Zeek makes a connection record's id: the connection's key fills it (and a custom key
    // its ctx). PopulateConnIdVal is not const but only reads the key; Zeek hands the key out
    // const only.
    const_cast<zeek::ConnKey&>(c->Key()).PopulateConnIdVal(*idv, *ctx);
    rec->Assign(id, std::move(idv));
    rec->Assign(proto, zeek::id::transport_proto->GetEnumVal(c->ConnTransport()));
    rec->Assign(depth, static_cast<zeek_uint_t>(arg_depth));
    rec->Assign(pkts_seen, static_cast<zeek_uint_t>(arg_pkts_seen));
    rec->AssignInterval(decided_after, after);
    rec->Assign(decided_by, decision->GetEnumVal(decision_value[by]));
    return rec;
}

double Output::ColumnValue(const Feature& f, double v) {
    if ( f.column_type != zeek::TYPE_COUNT || std::isnan(v) )
        return v;
    // Rounded as llrint() does (the current rounding mode, to nearest by default). Below zero (an
    // int field of the connection record, a span whose marks came in reverse order) or past
    // 2^64, a count cannot hold it.
    double r = std::nearbyint(v);
    return r >= 0.0 && r < 18446744073709551616.0 ? r : std::numeric_limits<double>::quiet_NaN();
}

void Output::SetNumber(zeek::RecordVal* rec, const Feature& f, double v) {
    if ( f.column_type == zeek::TYPE_COUNT )
        rec->Assign(f.column, static_cast<zeek_uint_t>(v));
    else
        rec->Assign(f.column, v);
}

bool Output::NeedsRecord() const {
    return ! compact || log_vectors->GetVal()->AsBool() || publish_policy || vector_ready;
}

namespace {

// The endpoints of c as a block carries them.
Endpoints endpoints(zeek::Connection* c) {
    Endpoints e;
    uint32_t words[4];
    c->OrigAddr().CopyIPv6(words);
    std::memcpy(e.orig_h, words, 16);
    c->RespAddr().CopyIPv6(words);
    std::memcpy(e.resp_h, words, 16);
    e.orig_p = ntohs(static_cast<uint16_t>(c->OrigPort()));
    e.resp_p = ntohs(static_cast<uint16_t>(c->RespPort()));
    switch ( c->ConnTransport() ) {
        case TRANSPORT_TCP: e.proto = IPPROTO_TCP; break;
        case TRANSPORT_UDP: e.proto = IPPROTO_UDP; break;
        case TRANSPORT_ICMP: e.proto = static_cast<uint8_t>(c->OrigAddr().GetFamily() == IPv4 ? int(IPPROTO_ICMP) : int(IPPROTO_ICMPV6)); break;
        default: e.proto = 0;
    }
    return e;
}

} // namespace

void Output::Send(zeek::Connection* c, zeek::RecordValPtr rec, zeek::RecordValPtr& conn_val) {
    if ( rec && log_vectors->GetVal()->AsBool() )
        zeek::log_mgr->Write(log_id.get(), rec.get());

    // As emit() does: a vector goes out if Cato::publish_policy and Cato::admit_vector let it (a
    // package's verdict side awaits it from then on, or counts it as shed).
    bool publish = publish_vectors->GetVal()->AsBool();
    if ( publish && publish_policy ) {
        if ( ! conn_val )
            conn_val = c->GetVal();
        auto allowed = publish_policy->Invoke(conn_val, rec);
        publish = allowed && allowed->AsBool();
    }
    std::string uid_text;
    if ( publish && admit_vector ) {
        if ( ! conn_val )
            conn_val = c->GetVal();
        uid_text = c->GetUID().Base62("C");
        auto allowed = admit_vector->Invoke(conn_val, zeek::make_intrusive<zeek::StringVal>(uid_text));
        publish = allowed && allowed->AsBool();
    }
    if ( publish ) {
        size_t waiting;
        if ( compact ) {
            if ( block.Size() == 0 ) {
                block.Reset(values.size(), schema);
                due = zeek::run_state::network_time + max_wait->GetVal()->AsInterval();
            }
            if ( uid_text.empty() )
                uid_text = c->GetUID().Base62("C");
            if ( ! block.Add(uid_text, endpoints(c), values.data()) && uid_too_wide++ == 0 )
                zeek::reporter->Warning("Cato: a uid wider than %zu characters cannot go in a compact block: its "
                                        "vector is not published", UID_WIDTH);
            waiting = block.Size();
        }
        else {
            if ( ! pending ) {
                pending = zeek::make_intrusive<zeek::VectorVal>(batch_type);
                due = zeek::run_state::network_time + max_wait->GetVal()->AsInterval();
            }
            pending->Append(rec);
            waiting = pending->Size();
        }
        if ( waiting >= batch_size->GetVal()->AsCount() )
            Flush();
    }

    if ( vector_ready )
        zeek::event_mgr.Enqueue(vector_ready, std::move(rec));
}

void Output::Publish(const zeek::FuncValPtr& event, zeek::ValPtr arg, size_t n) {
    // As Cluster::publish(Cato::vector_topic, event, arg) does.
    zeek::Args args{std::move(arg)};
    auto ev = zeek::cluster::backend->MakeClusterEvent(event, zeek::ArgsSpan{args});
    if ( ! ev || ! zeek::cluster::backend->PublishEvent(topic->GetVal()->AsStringVal()->ToStdString(), *ev) )
        return;
    published->SetVal(zeek::val_mgr->Count(published->GetVal()->AsCount() + n));
}

void Output::Flush() {
    if ( block.Size() > 0 ) {
        size_t n = block.Size();
        auto text = zeek::make_intrusive<zeek::StringVal>(block.Encode());
        block.Reset(values.size(), schema);
        Publish(vector_block, std::move(text), n);
    }
    if ( pending ) {
        auto batch = std::move(pending);
        pending = nullptr;
        Publish(vector_batch, batch, batch->Size());
    }
}

void Output::FlushIfDue() {
    if ( (pending || block.Size() > 0) && zeek::run_state::network_time >= due )
        Flush();
}

std::string TakeVerdicts(const std::string& text) {
    std::string err;
    // The verdict side of the package whose vectors the engine makes: in the module it bound.
    const std::string module = output.Module().empty() ? "Cato" : output.Module();
    auto schema_matches = zeek::id::find_func(module + "::schema_matches");
    auto take_verdict = zeek::id::find_func(module + "::take_verdict");
    if ( ! schema_matches || ! take_verdict )
        return module + "::schema_matches or " + module +
               "::take_verdict is not defined: a package's verdicts.zeek is not loaded";
    VerdictBlock block;
    if ( ! DecodeVerdicts(text, &block, &err) )
        return err;
    auto ok = schema_matches->Invoke(zeek::make_intrusive<zeek::StringVal>(block.schema),
                                     zeek::val_mgr->Count(block.verdicts.size()));
    if ( ! ok || ! ok->AsBool() )
        return "";
    std::vector<zeek::StringValPtr> labels;
    for ( const auto& label : block.labels )
        labels.push_back(zeek::make_intrusive<zeek::StringVal>(label));
    for ( const auto& v : block.verdicts ) {
        TransportProto transport = TRANSPORT_UNKNOWN;
        switch ( v.id.proto ) {
            case IPPROTO_TCP: transport = TRANSPORT_TCP; break;
            case IPPROTO_UDP: transport = TRANSPORT_UDP; break;
            case IPPROTO_ICMP:
            case IPPROTO_ICMPV6: transport = TRANSPORT_ICMP; break;
        }
        auto id = zeek::make_intrusive<zeek::RecordVal>(zeek::id::conn_id);
        auto addr = [](const uint8_t* bytes) {
            uint32_t words[4];
            std::memcpy(words, bytes, 16);
            return zeek::make_intrusive<zeek::AddrVal>(zeek::IPAddr(IPv6, words, zeek::IPAddr::Network));
        };
        // conn_id's first five fields by position, as Output::Bind checked them.
        id->Assign(0, addr(v.id.orig_h));
        id->Assign(1, zeek::val_mgr->Port(v.id.orig_p, transport));
        id->Assign(2, addr(v.id.resp_h));
        id->Assign(3, zeek::val_mgr->Port(v.id.resp_p, transport));
        id->Assign(4, zeek::val_mgr->Count(v.id.proto));
        take_verdict->Invoke(zeek::make_intrusive<zeek::StringVal>(v.uid), std::move(id), labels[v.label],
                             zeek::make_intrusive<zeek::DoubleVal>(v.score));
    }
    return "";
}

} // namespace plugin::Cato_Native
