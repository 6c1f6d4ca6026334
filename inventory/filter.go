package inventory

import "hash/maphash"

// Prefilters. Most resources fail most searches, and proving that by
// substring search or label map lookups costs 100-200 ns per resource (the
// common letters of a word recur all over a haystack; label maps are
// scattered over the heap). Each entry therefore carries two small
// signatures, computed when it is indexed, that disprove most non-matches in
// a few nanoseconds. They never reject a match: a resource that passes is
// still checked exactly, so they only decide how often that check runs.

// gramWords * 64 bits is the size of a bigram signature. 512 bits keep the
// false-positive rate of a typical 200-byte haystack (about 150 distinct
// bigrams, a quarter of the bits set) near 6% for a three-letter word.
const gramWords = 8

// grams is a Bloom-style set of the byte pairs of a text: if a word occurs
// in the text, every byte pair of the word is in the text's set, so an
// entry whose set lacks a bit of the word's cannot contain it. (The index
// keeps the sets by column, see chunk, and checks them in match.)
type grams [gramWords]uint64

func gramBit(a, b byte) uint32 {
	// Multiplicative hashing spreads the 16-bit pair over the 512 bits;
	// without it, ASCII pairs would crowd a few words of the set.
	return (uint32(a)<<8 | uint32(b)) * 0x9E3779B1 >> (32 - 9)
}

// add records the byte pairs of s, skipping pairs that straddle a field
// separator, which no word can contain.
func (g *grams) add(s string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == sep || s[i+1] == sep {
			continue
		}
		h := gramBit(s[i], s[i+1])
		g[h>>6] |= 1 << (h & 63)
	}
}

// labelSeed is per process: signatures are never stored or compared across
// processes.
var labelSeed = maphash.MakeSeed()

// labelBits are two bits of a 64-bit label signature: an entry's signature
// is the OR of the bits of its label pairs, so a resource whose signature
// lacks a bit of the query's cannot have all the query's labels. Two bits
// per pair rather than one: with one, the two pairs of a query such as
// env=prod,team=t8 share their only bit one time in 64, and the filter then
// passes every env=prod resource (a quarter of the index) to the exact
// check; it also lets fewer resources through that have one of the pairs
// and a colliding other label.
func labelBits(k, v string) uint64 {
	var h maphash.Hash
	h.SetSeed(labelSeed)
	h.WriteString(k)
	h.WriteByte(0)
	h.WriteString(v)
	x := h.Sum64()
	return 1<<(x&63) | 1<<(x>>6&63)
}

func labelSig(labels map[string]string) uint64 {
	var sig uint64
	for k, v := range labels {
		sig |= labelBits(k, v)
	}
	return sig
}
