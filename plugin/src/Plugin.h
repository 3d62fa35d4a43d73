// cato's native engine: per-connection features from the first N packets, computed in C++.
#pragma once

#include <zeek/plugin/Plugin.h>

namespace plugin::Cato_Native {

class Plugin : public zeek::plugin::Plugin {
protected:
    zeek::plugin::Configuration Configure() override;
    void HookSetupAnalyzerTree(zeek::Connection* conn) override;
    void HookDrainEvents() override;
};

extern Plugin plugin;

} // namespace plugin::Cato_Native
