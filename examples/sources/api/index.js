// A tiny HTTP API to develop inside the `api` environment.
const http = require('node:http');
http.createServer((_req, res) => res.end('hello from kubedev\n')).listen(3000);
