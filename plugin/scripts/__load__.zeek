##! The native engine's script side is in cato's static scripts (zeek-scripts/native.zeek is not
##! needed): a script from ``cato generate --engine native`` configures the plugin at start-up
##! with :zeek:id:`Cato::native_configure` and handles :zeek:id:`Cato::native_vector`.
