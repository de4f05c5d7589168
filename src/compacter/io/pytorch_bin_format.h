// The layout of a `pytorch_model.bin` as torch.save writes it since PyTorch 1.6 (torch-free part,
// shared with the fuzz target): a zip archive (io/zip_archive.h) whose entries all sit under one
// folder, `<archive>/`:
//   <archive>/data.pkl      the state dict, a pickle (io/state_dict_pickle.h)
//   <archive>/data/<key>    one raw little-endian file per storage, named by the persistent id
//   <archive>/version, <archive>/byteorder (newer writers), ... ignored except "byteorder: big"
// read_index() ties the pickle's storages to their entries and checks each size. Files from
// PyTorch before 1.6 (a raw pickle stream, or the older tar) are refused by name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compacter/io/state_dict_pickle.h"
#include "compacter/io/zip_archive.h"

namespace compacter::pytorch_bin {

struct Index {
  std::string archive;                      // the folder all entries sit in
  torch_pickle::StateDict dict;             // tensors (views) and storages
  std::vector<zip::Entry> storage_entries;  // parallel to dict.storages
};

// Throws Error naming the format when the first bytes of a file are not a zip archive: the
// legacy torch.save formats (a pickle stream; a tar archive) or something else. `head` holds the
// first min(file size, 512) bytes.
void check_zip_checkpoint(const uint8_t* head, size_t n, const std::string& source);

// Finds data.pkl, interprets it and checks that every storage's entry exists and holds exactly
// numel * element size bytes (each view was checked against its storage by the unpickler).
Index read_index(const zip::Archive& archive);

// The bytes of storage `i`: its entry, read and CRC-checked into dst (storage_entries[i].size).
void read_storage(const zip::Archive& archive, const Index& index, size_t i, void* dst);

}  // namespace compacter::pytorch_bin
