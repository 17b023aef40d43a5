# syntax=docker/dockerfile:1
# vcf-cds container image: a multi-stage build (Rust toolchain image -> distroless runtime).
#
#   docker build -t vcf-cds .
#   docker run -p 8080:8080 -e VCF_CDS_TRUSTED_ISSUERS=... vcf-cds
#
# Configuration comes from the environment only (VCF_CDS_<KEY>, see docs/configuration.md); an
# unknown or invalid VCF_CDS_* variable stops the container at start with a message naming it.
# The SQLite audit store and the audit spool live in the volume /var/lib/vcf-cds (keep it on
# durable storage; with a PostgreSQL audit_db only the spool is written there).
# tests/api/deploy.rs checks this file against the service (port, paths, health check, user).

ARG RUST_VERSION=1.95

# ---- build ----
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vcf-cds \
    && install -D -m 0755 target/release/vcf-cds /out/vcf-cds \
    && install -d -o 65532 -g 65532 -m 0750 /out/data /out/data/spool

# ---- runtime: glibc + libgcc only, no shell, no package manager ----
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/vcf-cds /usr/local/bin/vcf-cds
# The synthetic FHIR test patients, for `vcf-cds fixtures load` (the compose demo's loader).
COPY --chown=65532:65532 fixtures /usr/share/vcf-cds/fixtures
COPY --from=build --chown=65532:65532 /out/data /var/lib/vcf-cds
# distroless "nonroot" (uid 65532); numeric so orchestrators can verify it is not root.
USER 65532:65532
ENV VCF_CDS_LISTEN=0.0.0.0:8080 \
    VCF_CDS_AUDIT_DB=/var/lib/vcf-cds/audit.sqlite \
    VCF_CDS_AUDIT_SPOOL_DIR=/var/lib/vcf-cds/spool \
    VCF_CDS_LOG_FORMAT=json
VOLUME ["/var/lib/vcf-cds"]
EXPOSE 8080
# `vcf-cds health` GETs /healthz on the configured listen port (there is no curl in the image).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/vcf-cds", "health"]
ENTRYPOINT ["/usr/local/bin/vcf-cds"]
CMD ["serve"]
