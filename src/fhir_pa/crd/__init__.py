"""CRD (Da Vinci Coverage Requirements Discovery 2.2.1): call a payer's CDS Hooks service at order time and turn
its answer into a typed coverage decision per order."""
