##! ICMP packets for the per-packet strategy that re-arms ConnSize thresholds.
##!
##! That strategy asks ConnSize for each connection's next packet by connection ID, but Zeek
##! 8.0 cannot find every ICMP connection by its ID (an echo request sent from the higher to the
##! lower address is not found), so ICMP packets come from the ICMP analyzer's events instead:
##! every ICMP packet raises exactly one of these. The handlers are in an event group that is
##! on only when the generated script needs them (``Cato::icmp_by_events``); with it on they run
##! for every ICMP packet, and return at once past the last depth.

module Cato;

## Whether the generated script takes ICMP packets from these events.
const icmp_by_events = F &redef;

## Handles one of the first packets of an ICMP connection; the generated script implements it.
global icmp_packet: hook(c: connection);

event zeek_init()
	{
	if ( ! icmp_by_events )
		disable_event_group("Cato::icmp");
	}

event icmp_sent(c: connection, info: icmp_info) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_echo_request(c: connection, info: icmp_info, id: count, seq: count, payload: string) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_echo_reply(c: connection, info: icmp_info, id: count, seq: count, payload: string) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_error_message(c: connection, info: icmp_info, code: count, context: icmp_context) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_unreachable(c: connection, info: icmp_info, code: count, context: icmp_context) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_packet_too_big(c: connection, info: icmp_info, code: count, context: icmp_context) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_time_exceeded(c: connection, info: icmp_info, code: count, context: icmp_context) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_parameter_problem(c: connection, info: icmp_info, code: count, context: icmp_context) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_router_solicitation(c: connection, info: icmp_info, options: icmp6_nd_options) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_router_advertisement(c: connection, info: icmp_info, cur_hop_limit: count, managed: bool, other: bool, home_agent: bool, pref: count, proxy: bool, rsv: count, router_lifetime: interval, reachable_time: interval, retrans_timer: interval, options: icmp6_nd_options) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_neighbor_solicitation(c: connection, info: icmp_info, tgt: addr, options: icmp6_nd_options) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_neighbor_advertisement(c: connection, info: icmp_info, router: bool, solicited: bool, override: bool, tgt: addr, options: icmp6_nd_options) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}

event icmp_redirect(c: connection, info: icmp_info, tgt: addr, dest: addr, options: icmp6_nd_options) &group="Cato::icmp"
	{
	hook icmp_packet(c);
	}
