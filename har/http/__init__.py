"""The HTTP API without BentoML: endpoint bodies, the request body parser, the body limit."""
