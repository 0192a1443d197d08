"""Data planes behind one interface (``base.Runtime``): ``local`` runs each app as a supervised
Node.js process on this machine, ``kubernetes`` applies a Deployment and Service per app."""
