// The Aether example app. Aether sets PORT, AETHER_DEPLOYMENT_ID and AETHER_DIGEST.
const express = require("express");
const { version } = require("./package.json");

const app = express();
const deploymentId = process.env.AETHER_DEPLOYMENT_ID || "local";
const digest = process.env.AETHER_DIGEST || "";

app.get("/", (req, res) => {
  res.json({ message: "Hello from Aether", deployment_id: deploymentId, version, digest });
});

app.get("/healthz", (req, res) => {
  res.json({ ok: true });
});

const port = Number(process.env.PORT || 3000);
const server = app.listen(port, () => {
  console.log(`hello-node ${version} (${deploymentId}) listening on ${port}`);
});

process.on("SIGTERM", () => {
  console.log("SIGTERM: closing");
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
});
