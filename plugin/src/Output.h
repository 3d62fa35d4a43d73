// Where the native engine's vectors go, as cato's static scripts send the script engine's
// (zeek-scripts/main.zeek, emit()): Cato::Info records, written to cato.log, offered to the
// Cato::publish_policy and Cato::admit_vector hooks, published in batches on Cato::vector_topic
// and raised as Cato::vector_ready. A batch goes as Cato::vector_batch (a vector of records) or, when
// Cato::vector_form is Cato::COMPACT, as Cato::vector_block (one compact block, Block.h).
#pragma once

#include <zeek/EventHandler.h>
#include <zeek/Func.h>
#include <zeek/ID.h>
#include <zeek/Type.h>
#include <zeek/Val.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "Block.h"

namespace zeek {
class Connection;
}

namespace plugin::Cato_Native {

struct Feature;

// What made a vector: the values of Cato::Decision this engine uses (bound by name).
enum Decision : uint8_t { DEPTH = 0, DEADLINE = 1, END = 2, NUM_DECISIONS };

class Output {
public:
    // Resolves the module of cato's static scripts, ``Cato`` or a compiled package's own (the Info
    // record and its fixed columns, the Decision values, the options, the log stream, the events
    // and the hook) and checks each is what the code below assumes; false, with *err saying what
    // is not, otherwise.
    bool Bind(const std::string& module, std::string* err);

    // The module bound (empty before Bind): where a package's verdict side is, too.
    const std::string& Module() const { return module; }

    const zeek::RecordTypePtr& InfoType() const { return info; }

    // A new Cato::Info record for connection c with the fixed columns set.
    zeek::RecordValPtr MakeInfo(zeek::Connection* c, uint64_t depth, uint64_t pkts_seen, Decision by,
                                double after) const;

    // What numeric feature f's column holds for value v: v, or v rounded for a count column; NaN
    // (the column stays unset, as for a value that does not apply) where a count cannot hold it,
    // below zero or past the largest count, rather than wrapping around to a huge count.
    static double ColumnValue(const Feature& f, double v);

    // Sets numeric feature f's column of info to v, a ColumnValue.
    static void SetNumber(zeek::RecordVal* info, const Feature& f, double v);

    // The next vector's values, in the order of the configured features (NaN: unset).
    std::vector<float>& Values(size_t n) {
        values.resize(n);
        return values;
    }

    // Whether the next vector needs its Cato::Info record: for the log, a handler of
    // Cato::vector_ready or Cato::publish_policy, or the records form.
    bool NeedsRecord() const;

    // Sends a finished vector of connection c (its Values(), and its record info when
    // NeedsRecord() said so): logs it, publishes it (in a batch) if Cato::publish_policy and
    // Cato::admit_vector let it,
    // and raises Cato::vector_ready. conn_val is c's connection record, when made already (it
    // is made here if the hook needs it).
    void Send(zeek::Connection* c, zeek::RecordValPtr info, zeek::RecordValPtr& conn_val);

    // Publishes the vectors waiting for their batch to fill now, as Cluster::publish(
    // Cato::vector_topic, Cato::vector_batch, vectors) would.
    void Flush();

    // Publishes the waiting vectors once they waited Cato::publish_max_wait.
    void FlushIfDue();

private:
    zeek::RecordTypePtr info;
    int ts = -1, uid = -1, id = -1, proto = -1, depth = -1, pkts_seen = -1, decided_after = -1, decided_by = -1;
    int id_ctx = -1; // offset of conn_id's ctx field
    zeek::EnumTypePtr decision;
    std::array<zeek_int_t, NUM_DECISIONS> decision_value{}; // Cato::DEPTH, Cato::DEADLINE, Cato::END
    zeek::EnumValPtr log_id;
    zeek::detail::IDPtr log_vectors, publish_vectors, batch_size, max_wait, topic, published;
    zeek::FuncValPtr vector_batch;
    zeek::FuncPtr publish_policy; // Cato::publish_policy, when a script has a handler for it
    zeek::FuncPtr admit_vector;   // Cato::admit_vector, likewise (it needs no record)
    zeek::EventHandlerPtr vector_ready;
    zeek::VectorTypePtr batch_type;
    zeek::VectorValPtr pending; // vectors waiting to be published, in the records form
    bool compact = false;       // Cato::vector_form is Cato::COMPACT
    zeek::FuncValPtr vector_block;
    std::string module;         // the module bound
    std::string schema;         // Cato::schema, where a package sets it
    VectorBlock block;          // vectors waiting to be published, in the compact form
    size_t n_features = 0;
    std::vector<float> values;
    uint64_t uid_too_wide = 0;
    double due = 0; // when they must go at the latest

    void Publish(const zeek::FuncValPtr& event, zeek::ValPtr arg, size_t n);
};

extern Output output;

// Takes a compact verdict block (Cato::verdict_block): checks its schema with Cato::schema_matches
// and hands each verdict to Cato::take_verdict, as the handler of Cato::verdicts does for the
// records form. Returns "" or what is wrong with a block that cannot be read (then none is taken).
std::string TakeVerdicts(const std::string& block);

} // namespace plugin::Cato_Native
