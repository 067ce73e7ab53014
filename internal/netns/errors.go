package netns

import "errors"

// Errors of the netns helper; test with errors.Is.
var (
	// ErrNotSupported: network namespaces are Linux-only.
	ErrNotSupported = errors.New("netns: network namespaces not supported on this OS")
	// ErrNotRoot: creating namespaces and links needs root (CAP_NET_ADMIN
	// and CAP_SYS_ADMIN).
	ErrNotRoot = errors.New("netns: not running as root")
	// ErrNoIP: the ip command of iproute2 is not installed.
	ErrNoIP = errors.New("netns: ip (iproute2) not found")
	// ErrCommand: an ip command failed; the error carries its output.
	ErrCommand = errors.New("netns: command failed")
	// ErrNoSubnet: every /30 of the test range is taken.
	ErrNoSubnet = errors.New("netns: no free subnet in 10.231.0.0/16")
	// ErrClosed: the pair was already closed.
	ErrClosed = errors.New("netns: pair closed")
)
