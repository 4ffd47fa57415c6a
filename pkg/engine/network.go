package engine

// The bridge driver's options that Bee2's settings set on a network (docker.<server>.networks.<name>).
const (
	// OptionMasquerade "false" turns off the NAT of the network's outgoing traffic.
	OptionMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
	// OptionBridgeName is the Linux bridge's name.
	OptionBridgeName = "com.docker.network.bridge.name"
	// OptionIfPrefix is the prefix of the containers' interface names on the network.
	OptionIfPrefix = "com.docker.network.container_interface_prefix"
	// OptionHostBindingIPv4 and OptionHostBindingIPv6 are the host addresses that ports published by the
	// network's containers bind to when they name none.
	OptionHostBindingIPv4 = "com.docker.network.bridge.host_binding_ipv4"
	OptionHostBindingIPv6 = "com.docker.network.bridge.host_binding_ipv6"
)

// NetworkSpec is everything needed to create one user-defined bridge network.
type NetworkSpec struct {
	Name       string
	EnableIPv6 bool
	// Subnets are the IPAM configuration, in CIDR form and in the order given (Bee2 puts IPv6 first, then
	// IPv4); none lets the engine choose an IPv4 subnet.
	Subnets []string
	// Options are the bridge driver's options, see the Option constants; nil for none.
	Options map[string]string
	Labels  map[string]string
}
