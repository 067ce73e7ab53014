//go:build !amd64

package crc32c

import "hash/crc32"

var table = crc32.MakeTable(crc32.Castagnoli)

// Update returns the CRC-32C of p appended to the data whose CRC-32C is
// crc, exactly as crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), p).
func Update(crc uint32, p []byte) uint32 { return crc32.Update(crc, table, p) }
