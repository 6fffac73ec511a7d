# syntax=docker/dockerfile:1
# oidcgate container image: built from this workspace with the `dist` profile
# (Cargo.toml), run as a non-root user on a distroless base (glibc, CA
# certificates, no shell).
#
#   docker build -t oidcgate .
#   docker run -p 4180:4180 -e OIDCGATE_PROVIDER_URL=... -e OIDCGATE_CLIENT_ID=... \
#     -e OIDCGATE_CLIENT_SECRET=... -e OIDCGATE_SESSION_ENCRYPTION_KEY=... oidcgate

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked --bin oidcgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/oidcgate /usr/local/bin/oidcgate
# Every key can come from OIDCGATE_* variables; a file via --config or
# OIDCGATE_CONFIG. Inside a container the listener must not be loopback-only.
ENV OIDCGATE_LISTEN=0.0.0.0:4180 \
    NO_COLOR=1
USER 65532:65532
EXPOSE 4180
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/oidcgate", "health"]
ENTRYPOINT ["/usr/local/bin/oidcgate"]
CMD ["run"]
