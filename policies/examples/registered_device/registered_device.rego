# Admin roles may only be requested from a registered device: the identity
# provider asserts the trait device_registered ("true") for the device the
# user signed in from.
package gatehouse

deny contains sprintf("role %q may only be requested from a registered device", [role]) if {
	some role in input.request.roles
	role in data.devices.admin_roles
	not requester_device_registered
}

requester_device_registered if "true" in input.user.traits.device_registered
