#!/bin/sh
# typemesh-cni as a container runtime finds it: an executable named after the plugin's
# "type" in the CNI bin directory (/opt/cni/bin). The installer puts this wrapper there as
# typemesh-cni, beside typemesh-cni.d/ holding a Node.js binary and the plugin's bundle,
# so the node needs no Node.js of its own. The runtime's environment and stdin pass through.
dir="$(dirname "$0")/typemesh-cni.d"
exec "$dir/node" "$dir/typemesh-cni.js"
