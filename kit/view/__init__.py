"""Pictures of the live system: state pictures, Graphviz diagrams, plots and HTML parts.

Views read the lower layers and never change them."""
