# The probe image: the wavelift binary, statically linked, for probe pods (`wavelift probe`)
# and anything else that runs wavelift in a cluster. Not built or tested on the development
# machine (no Docker engine, no extra Rust targets there): see README "The probe image".
#
#   docker build -t registry.example.internal/wavelift:0.1 .
#   docker push registry.example.internal/wavelift:0.1
#
# and set `[plan] probe_image = "registry.example.internal/wavelift:0.1"`.

# Build: Rust on Alpine links against musl, so the binary is static.
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin wavelift \
 && strip target/release/wavelift

# Run: nothing but the binary. The probe pod adds only CAP_NET_RAW and runs as non-root.
FROM scratch
COPY --from=build /src/target/release/wavelift /wavelift
USER 65534:65534
ENTRYPOINT ["/wavelift"]
CMD ["probe", "--help"]
