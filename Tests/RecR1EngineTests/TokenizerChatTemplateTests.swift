import XCTest

import RecR1Formats
@testable import RecR1Tokenizer

/// ChatML rendering on template texts written out here. (The parity test checks the real SmolLM2
/// template against HF's Jinja rendering.)
final class TokenizerChatTemplateTests: XCTestCase {
    /// SmolLM2-Instruct's template, as its tokenizer_config.json and GGUF carry it.
    static let smolLM2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    let user = ChatMessage(role: "user", content: "Hi")
    let system = ChatMessage(role: "system", content: "Be brief.")

    func testSmolLM2Template() throws {
        let template = try ChatTemplate(Self.smolLM2)
        XCTAssertEqual(template.defaultSystemMessage, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        // The template's loop: a default system turn first when messages[0] is not a system message.
        XCTAssertEqual(template.render([user], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(template.render([system, user], addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        // Only messages[0] is looked at: a system message later does not stop the default.
        XCTAssertTrue(template.render([user, system], addGenerationPrompt: false).hasPrefix("<|im_start|>system\nYou are"))
        // With no messages the loop never runs.
        XCTAssertEqual(template.render([], addGenerationPrompt: true), "<|im_start|>assistant\n")
        XCTAssertEqual(template.render([user], addGenerationPrompt: false, defaultSystem: false), "<|im_start|>user\nHi<|im_end|>\n")
    }

    func testOtherSpellingsOfChatML() throws {
        // Escaped "\n", double quotes, attribute access and spaces, with the default given by an
        // if/else instead (as Qwen2's template does) and an escaped apostrophe in it.
        let qwenLike = #"{%- if messages[0]["role"] == "system" %}{{- "<|im_start|>system\n" + messages[0]["content"] + "<|im_end|>\n" }}{%- else %}{{- "<|im_start|>system\nYou\'re Qwen.<|im_end|>\n" }}{%- endif %}{%- for message in messages %}{%- if message.role != "system" or not loop.first %}{{- "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>" + "\n" }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- "<|im_start|>assistant\n" }}{%- endif %}"#
        let template = try ChatTemplate(qwenLike)
        XCTAssertEqual(template.defaultSystemMessage, "You're Qwen.")
        XCTAssertEqual(template.render([user], addGenerationPrompt: true),
                       "<|im_start|>system\nYou're Qwen.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        // ChatML with no default system message.
        let plain = try ChatTemplate("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
        XCTAssertNil(plain.defaultSystemMessage)
        XCTAssertEqual(plain.render([user], addGenerationPrompt: false), "<|im_start|>user\nHi<|im_end|>\n")
    }

    func testTemplatesThatAreNotChatMLAreRefused() {
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        XCTAssertThrowsError(try ChatTemplate(llama3)) { XCTAssertTrue("\($0)".contains("not a ChatML template"), "\($0)") }
        // ChatML tokens, but the content is transformed, which recr1 would not reproduce.
        let trimmed = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        XCTAssertThrowsError(try ChatTemplate(trimmed))
    }
}
