"""Record tests/cassettes/route.yaml against a real OpenAI-compatible server (run once, commit the file).

python -m agentops local-model start
python record_cassette.py "$(python -m agentops local-model url)" smollm2-135m-instruct
"""

import asyncio
import sys
from pathlib import Path

from support_bot import route

from agentops.models import model_config

MESSAGES = ["I was charged twice for my order", "Where is my parcel?"]


async def main(base_url: str, model: str) -> None:
    tape = Path(__file__).parent / "tests" / "cassettes" / "route.yaml"
    config = model_config("compatible", model, base_url=base_url, max_tokens=32, temperature=0, cassette=tape)
    for message in MESSAGES:
        print(message, "→", await route(config, message))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
