"""The `ai` service: Ollama or an OpenAI-compatible server as tools (generate, chat with tool calls, embed,
models), and ask_client: the MCP client's own model through sampling, with no model server at all."""

from ...plugin import Argument, ServicePlugin
from .service import AiTools as AiTools
from .service import build as build
from .settings import AiSettings as AiSettings

plugin = ServicePlugin(
    name="ai",
    summary="language models: Ollama or an OpenAI-compatible server, and the MCP client's own model (sampling)",
    settings=AiSettings,
    build=build,
    arguments=(
        Argument(
            "--backend",
            key="backend",
            metavar="ollama|openai",
            help="the model server's API (default: ollama)",
        ),
        Argument("--url", key="url", metavar="URL", help="the model server (default: none; only ask_client)"),
        Argument("--model", key="model", metavar="NAME", help="default model of generate and chat"),
        Argument("--embed-model", key="embed_model", metavar="NAME", help="default model of embed"),
        Argument(
            "--api-key-env", key="api_key_env", metavar="VAR", help="environment variable holding the API key"
        ),
        Argument(
            "--read-timeout",
            key="read_timeout",
            kind="float",
            metavar="SECONDS",
            help="seconds of silence before a call fails (default 120)",
        ),
        Argument("--admin", key="admin", kind="flag", help="register pull and delete"),
    ),
    extra="ai",
    requires=("httpx",),
)

__all__ = ["AiSettings", "AiTools", "build", "plugin"]
