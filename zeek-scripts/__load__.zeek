##! cato: per-connection feature vectors from the first packets of each connection.
##! Scripts from ``cato generate`` and packages from ``cato compile`` carry a copy of these
##! scripts for when cato is not installed; whichever Zeek meets first is the one it uses.

@ifndef ( Cato::LOG )
@load ./main
@load ./icmp
@endif
