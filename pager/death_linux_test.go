//go:build linux

package pager_test

func childPager() error { return nil }
