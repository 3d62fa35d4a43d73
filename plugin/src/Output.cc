#include "Output.h"

#include <zeek/Conn.h>
#include <zeek/ConnKey.h>
#include <zeek/Event.h>
#include <zeek/EventRegistry.h>
#include <zeek/Func.h>
#include <zeek/RunState.h>
#include <zeek/cluster/Backend.h>
#include <zeek/logging/Manager.h>

#include <cmath>

#include "Config.h"

namespace plugin::Cato_Native {

Output output;

bool Output::Bind(std::string* err) {
    *this = Output();
    info = zeek::id::find_type<zeek::RecordType>("Cato::Info");
    decision = zeek::id::find_type<zeek::EnumType>("Cato::Decision");
    log_id = zeek::id::find_val<zeek::EnumVal>("Cato::LOG");
    log_vectors = zeek::id::find("Cato::log_vectors");
    publish_vectors = zeek::id::find("Cato::publish_vectors");
    batch_size = zeek::id::find("Cato::publish_batch_size");
    max_wait = zeek::id::find("Cato::publish_max_wait");
    topic = zeek::id::find("Cato::vector_topic");
    published = zeek::id::find("Cato::vectors_published");
    vector_batch = zeek::id::find_val<zeek::FuncVal>("Cato::vector_batch");
    if ( ! info || ! decision || ! log_id || ! log_vectors || ! publish_vectors || ! batch_size || ! max_wait ||
         ! topic || ! published || ! vector_batch ) {
        *err = "cato's static scripts (module Cato) are not loaded";
        return false;
    }
    auto field = [&](const char* name, int* at) {
        if ( (*at = info->FieldOffset(name)) < 0 )
            *err = std::string("Cato::Info has no field ") + name;
        return *at >= 0;
    };
    if ( ! field("ts", &ts) || ! field("uid", &uid) || ! field("id", &id) || ! field("proto", &proto) ||
         ! field("depth", &depth) || ! field("pkts_seen", &pkts_seen) || ! field("decided_after", &decided_after) ||
         ! field("decided_by", &decided_by) )
        return false;
    if ( auto* h = zeek::event_registry->Lookup("Cato::vector_ready") )
        vector_ready = h;
    if ( auto hook = zeek::id::find_func("Cato::publish_policy"); hook && ! hook->GetBodies().empty() )
        publish_policy = hook;
    batch_type = zeek::make_intrusive<zeek::VectorType>(info);
    return true;
}

zeek::RecordValPtr Output::MakeInfo(zeek::Connection* c, uint64_t arg_depth, uint64_t arg_pkts_seen, Decision by,
                                    double after) const {
    auto rec = zeek::make_intrusive<zeek::RecordVal>(info);
    rec->AssignTime(ts, c->StartTime());
    rec->Assign(uid, zeek::make_intrusive<zeek::StringVal>(c->GetUID().Base62("C")));
    auto idv = zeek::make_intrusive<zeek::RecordVal>(zeek::id::conn_id);
    auto ctx = idv->GetField<zeek::RecordVal>(5);
    const_cast<zeek::ConnKey&>(c->Key()).PopulateConnIdVal(*idv, *ctx);
    rec->Assign(id, std::move(idv));
    rec->Assign(proto, zeek::id::transport_proto->GetEnumVal(c->ConnTransport()));
    rec->Assign(depth, static_cast<zeek_uint_t>(arg_depth));
    rec->Assign(pkts_seen, static_cast<zeek_uint_t>(arg_pkts_seen));
    rec->AssignInterval(decided_after, after);
    rec->Assign(decided_by, decision->GetEnumVal(by));
    return rec;
}

void Output::SetNumber(zeek::RecordVal* rec, const Feature& f, double v) {
    if ( f.column_type == zeek::TYPE_COUNT )
        rec->Assign(f.column, static_cast<zeek_uint_t>(std::llrint(v)));
    else
        rec->Assign(f.column, v);
}

void Output::Send(zeek::Connection* c, zeek::RecordValPtr rec, zeek::RecordValPtr& conn_val) {
    if ( log_vectors->GetVal()->AsBool() )
        zeek::log_mgr->Write(log_id.get(), rec.get());

    // As emit() does: a vector goes out if Cato::publish_policy lets it (a package's verdict side
    // awaits it from then on, or counts it as shed).
    bool publish = publish_vectors->GetVal()->AsBool();
    if ( publish && publish_policy ) {
        if ( ! conn_val )
            conn_val = c->GetVal();
        auto allowed = publish_policy->Invoke(conn_val, rec);
        publish = allowed && allowed->AsBool();
    }
    if ( publish ) {
        if ( ! pending ) {
            pending = zeek::make_intrusive<zeek::VectorVal>(batch_type);
            due = zeek::run_state::network_time + max_wait->GetVal()->AsInterval();
        }
        pending->Append(rec);
        if ( pending->Size() >= batch_size->GetVal()->AsCount() )
            Flush();
    }

    if ( vector_ready )
        zeek::event_mgr.Enqueue(vector_ready, std::move(rec));
}

void Output::Flush() {
    if ( ! pending )
        return;
    auto batch = std::move(pending);
    pending = nullptr;
    // As Cluster::publish(Cato::vector_topic, Cato::vector_batch, batch) does.
    zeek::Args args{batch};
    auto ev = zeek::cluster::backend->MakeClusterEvent(vector_batch, zeek::ArgsSpan{args});
    if ( ! ev || ! zeek::cluster::backend->PublishEvent(topic->GetVal()->AsStringVal()->ToStdString(), *ev) )
        return;
    published->SetVal(zeek::val_mgr->Count(published->GetVal()->AsCount() + batch->Size()));
}

void Output::FlushIfDue() {
    if ( pending && zeek::run_state::network_time >= due )
        Flush();
}

} // namespace plugin::Cato_Native
