#include "Plugin.h"

#include <zeek/analyzer/Component.h>

#include "Extractor.h"
#include "Output.h"

namespace plugin::Cato_Native {

Plugin plugin;

zeek::plugin::Configuration Plugin::Configure() {
    AddComponent(new zeek::analyzer::Component("CATO_NATIVE", nullptr));
    // Both hooks return at once until a script calls Cato::native_configure.
    EnableHook(zeek::plugin::HOOK_SETUP_ANALYZER_TREE);
    EnableHook(zeek::plugin::HOOK_DRAIN_EVENTS);

    zeek::plugin::Configuration config;
    config.name = "Cato::Native";
    config.description = "cato's native engine: feature vectors from the first packets of each connection";
    config.version.major = 0;
    config.version.minor = 1;
    config.version.patch = 0;
    return config;
}

void Plugin::HookSetupAnalyzerTree(zeek::Connection* conn) { Extractor::Attach(conn); }

void Plugin::HookDrainEvents() {
    Extractor::DecidePastDeadline();
    output.FlushIfDue();
}

} // namespace plugin::Cato_Native
