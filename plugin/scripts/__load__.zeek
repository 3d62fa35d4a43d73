##! cato's native engine (plugin Cato::Native). It does nothing until a script from
##! ``cato generate --engine native`` configures it with :zeek:id:`Cato::native_configure`;
##! the vectors it makes go through cato's static scripts' ``Cato`` module (cato.log,
##! :zeek:id:`Cato::vector_ready`, :zeek:id:`Cato::vector_batch`).
