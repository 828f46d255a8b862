"""Files probrep writes: atomically (``files``), figures with one matplotlib setup (``figures``), JSON."""
