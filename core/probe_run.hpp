// The step the two open-addressing tables with linear probing share (core/flat_table.hpp,
// core/id_table.hpp): backward-shift deletion. Once a slot is emptied, the later members of its
// probe run that may live there move back over it, so that a lookup still stops at the first
// empty slot and no tombstone is ever left. The tables differ in what a slot holds (a key, or
// an id with a fingerprint whose key the caller computes), hence the callables.
//
// Header-only, no state; not thread-safe (the tables' own rule).
#pragma once

#include <cstddef>

namespace memxx::core {

// Closes the hole at slot `hole`: `next(i)` is the slot after i (wrapping round), `empty(j)`
// whether slot j is free, `home(j)` the slot the entry in j hashes to, `move(to, from)` copies
// the entry of slot `from` into slot `to`. Returns the slot left to be emptied by the caller.
template <class Next, class Empty, class Home, class Move>
__attribute__((always_inline)) inline std::size_t
shift_back_over(std::size_t hole, Next &&next, Empty &&empty, Home &&home, Move &&move) noexcept {
    for (std::size_t j = next(hole); !empty(j); j = next(j)) {
        const std::size_t h = home(j);
        // The entry may move to the hole when its home is not inside (hole, j], wrapping round.
        const bool movable = (j > hole) ? (h <= hole || h > j) : (h <= hole && h > j);
        if (movable) {
            move(hole, j);
            hole = j;
        }
    }
    return hole;
}

} // namespace memxx::core
