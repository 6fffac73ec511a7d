//! Token refresh under stampedes, rotation and outages (placeholder).
