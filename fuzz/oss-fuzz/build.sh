#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script: every cargo-fuzz target of fuzz/, with its seed
# corpus (fuzz/seeds/<target>/) and dictionary (fuzz/dict/<target>.dict).
cd "$SRC/tether/fuzz"
# The base image's cargo-fuzz sets the sanitizer from $SANITIZER and --cfg fuzzing.
cargo fuzz build -O --debug-assertions
out_dir=target/x86_64-unknown-linux-gnu/release
for target in $(cargo fuzz list); do
    cp "$out_dir/$target" "$OUT/"
    if [ -d "seeds/$target" ]; then
        (cd "seeds/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
    fi
    if [ -f "dict/$target.dict" ]; then
        cp "dict/$target.dict" "$OUT/$target.dict"
    fi
done
