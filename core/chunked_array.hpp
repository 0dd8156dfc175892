// An array that grows by fixed chunks in mimalloc memory (never in the hooked Python allocator):
// growing copies nothing and leaves at most one chunk unused, where a vector that doubles leaves
// up to half of itself unused (and needs the old and the new copy at once while it grows), and
// truncating gives the chunks past the end back. An element costs one more load than in a vector
// (the chunk's address, from a directory that stays in cache). For trivially copyable elements
// only. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mimalloc.h>

namespace memxx::core {

// ChunkBits: log2 of the elements per chunk.
template <class T, unsigned ChunkBits = 12> class ChunkedArray {
    static_assert(std::is_trivially_copyable<T>::value, "elements are copied as bytes");

  public:
    static constexpr std::size_t kChunk = std::size_t{1} << ChunkBits;

    ChunkedArray() = default;
    ChunkedArray(const ChunkedArray &) = delete;
    ChunkedArray &operator=(const ChunkedArray &) = delete;
    ~ChunkedArray() {
        truncate(0);
        mi_free(chunks_);
    }

    T &operator[](std::size_t i) noexcept { return chunks_[i >> ChunkBits][i & (kChunk - 1)]; }
    const T &operator[](std::size_t i) const noexcept {
        return chunks_[i >> ChunkBits][i & (kChunk - 1)];
    }

    // False when a chunk could not be had (nothing is added then).
    bool push_back(const T &value) noexcept {
        if (size_ == chunk_count_ * kChunk && !add_chunk()) {
            return false;
        }
        (*this)[size_++] = value;
        return true;
    }

    // Grows to `count` elements, the new ones `fill`; false when memory ran out (the elements
    // added so far stay).
    bool grow_to(std::size_t count, const T &fill) noexcept {
        while (size_ < count) {
            if (!push_back(fill)) {
                return false;
            }
        }
        return true;
    }

    // Keeps the first `count` elements (all, when there are fewer); the chunks past them are
    // given back.
    void truncate(std::size_t count) noexcept {
        if (count < size_) {
            size_ = count;
        }
        const std::size_t needed = (size_ + kChunk - 1) >> ChunkBits;
        while (chunk_count_ > needed) {
            mi_free(chunks_[--chunk_count_]);
        }
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T &back() noexcept { return (*this)[size_ - 1]; }
    // Keeps its chunk: a push and a pop in turn at a chunk's edge do not allocate each time.
    void pop_back() noexcept { --size_; }
    std::size_t memory_bytes() const noexcept {
        return chunk_count_ * kChunk * sizeof(T) + directory_capacity_ * sizeof(T *);
    }

  private:
    bool add_chunk() noexcept {
        if (chunk_count_ == directory_capacity_) {
            const std::size_t wanted = directory_capacity_ ? directory_capacity_ * 2 : 16;
            auto **grown = static_cast<T **>(mi_realloc(chunks_, wanted * sizeof(T *)));
            if (grown == nullptr) {
                return false;
            }
            chunks_ = grown;
            directory_capacity_ = wanted;
        }
        auto *chunk = static_cast<T *>(mi_malloc(kChunk * sizeof(T)));
        if (chunk == nullptr) {
            return false;
        }
        chunks_[chunk_count_++] = chunk;
        return true;
    }

    T **chunks_ = nullptr;
    std::size_t chunk_count_ = 0;
    std::size_t directory_capacity_ = 0;
    std::size_t size_ = 0;
};

} // namespace memxx::core
