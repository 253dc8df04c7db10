package config

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one part of a split inventory (--shard K/N): the hosts whose FNV-1a hash of
// the lower-cased inventory name, modulo N, is K-1. The split depends only on the names,
// never on inventory order or on the machine, so N collectors given the same inventory
// and shards 1/N … N/N collect disjoint sets of hosts that together cover the inventory.
// The zero Shard (and 1/1) is the whole inventory.
type Shard struct {
	K, N int
}

// MaxShards bounds N: more collectors than this is a typo, not a deployment.
const MaxShards = 10000

// ParseShard parses "K/N" (1 ≤ K ≤ N ≤ MaxShards).
func ParseShard(s string) (Shard, error) {
	ks, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	k, kerr := strconv.Atoi(ks)
	n, nerr := strconv.Atoi(ns)
	if !ok || kerr != nil || nerr != nil {
		return Shard{}, fmt.Errorf("--shard %q: want K/N, e.g. 2/3 for the second of three shards", s)
	}
	if n < 1 || n > MaxShards || k < 1 || k > n {
		return Shard{}, fmt.Errorf("--shard %q: want 1 ≤ K ≤ N ≤ %d", s, MaxShards)
	}
	return Shard{K: k, N: n}, nil
}

// Whole says the shard is the whole inventory.
func (s Shard) Whole() bool { return s.N <= 1 }

// String is "K/N", or "" for the whole inventory.
func (s Shard) String() string {
	if s.Whole() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// ShardOf returns the 1-based shard of n shards that host name belongs to.
func ShardOf(name string, n int) int {
	if n <= 1 {
		return 1
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(strings.ToLower(name)))
	return int(h.Sum64()%uint64(n)) + 1
}

// Has says host name belongs to the shard.
func (s Shard) Has(name string) bool { return s.Whole() || ShardOf(name, s.N) == s.K }

// Select returns the hosts of the shard, in inventory order (possibly none: a small
// inventory split many ways leaves some shards empty).
func (s Shard) Select(hosts []Host) []Host {
	if s.Whole() {
		return hosts
	}
	var out []Host
	for _, h := range hosts {
		if s.Has(h.Name) {
			out = append(out, h)
		}
	}
	return out
}
