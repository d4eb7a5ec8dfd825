"""The named, weighted patterns of the prompt-injection screen (see ``core.security.injection``).

Every rule is matched against normalized, lower-cased text (``injection_normalize``), so
patterns are written in lower case and need not care about homoglyphs, invisible
characters or runs of whitespace. A rule's weight is how sure one hit makes us on its own;
the defender combines the weights of all rules that fired as independent evidence
(``1 - prod(1 - w)``). ``tool_weight`` is used instead for tool results, where text that
talks to "the assistant" is far more suspicious than in a user's own message.

Names are ``family.what``: ``override`` (replace the instructions), ``exfil`` (leak the
system prompt, secrets or data), ``roleplay`` (persona jailbreaks), ``template`` (forged
chat turns and tokens), ``tool`` (text addressed to the model from inside data),
``coerce`` (pressure and response shaping), ``payload`` (what the attacker wants emitted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REACH = 400
LOCAL_SEARCH_MIN = 1_200
MAX_LOCAL_RANGES = 64


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass(frozen=True, slots=True)
class Rule:
    """One named pattern, the weight of a hit, and the cheap gate in front of the regex.

    ``words`` (whole ``\\w+`` tokens) and ``marks`` (substrings) are a necessary condition:
    every text the pattern matches contains one of them, so the regex only runs on texts
    that pass the gate (a set lookup instead of a scan: most messages skip most rules).
    Empty ``words`` and ``marks`` mean the regex always runs.
    """

    name: str
    pattern: re.Pattern[str]
    weight: float
    tool_weight: float
    words: frozenset[str] = frozenset()
    marks: tuple[str, ...] = ()

    def matches(self, text: str, tokens: frozenset[str]) -> bool:
        """True when the pattern matches ``text`` (normalized, with its ``\\w+`` tokens).

        In long texts a rule gated by words only searches the stretches around those
        words (no match of any rule spans more than :data:`REACH` characters either side
        of its gate word), so a long page costs each rule a few windows, not a full scan.
        """
        if not self.gate(tokens, text):
            return False
        if len(text) <= LOCAL_SEARCH_MIN or self.marks or not self.words:
            return self.pattern.search(text) is not None
        ranges: list[list[int]] = []
        for word in self.words & tokens:
            start = 0
            while (found := text.find(word, start)) != -1:
                start = found + 1
                end = found + len(word)
                if (found and _word_char(text[found - 1])) or (
                    end < len(text) and _word_char(text[end])
                ):
                    continue
                ranges.append([max(0, found - REACH), end + REACH])
                if len(ranges) > MAX_LOCAL_RANGES:
                    return self.pattern.search(text) is not None
        ranges.sort()
        merged: list[list[int]] = []
        for low, high in ranges:
            if merged and low <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        return any(self.pattern.search(text, low, high) for low, high in merged)

    def gate(self, tokens: frozenset[str], text: str) -> bool:
        """True when the pattern can possibly match ``text`` (whose tokens are given)."""
        if not self.words and not self.marks:
            return True
        if self.words and not self.words.isdisjoint(tokens):
            return True
        return any(mark in text for mark in self.marks)


def _rule(
    name: str,
    pattern: str,
    weight: float,
    tool_weight: float | None = None,
    *,
    words: str = "",
    marks: tuple[str, ...] = (),
) -> Rule:
    return Rule(
        name,
        re.compile(pattern),
        weight,
        weight if tool_weight is None else tool_weight,
        frozenset(words.split()),
        marks,
    )


# Shared vocabulary.
_PRIOR = r"(?:previous|prior|preceding|above|earlier|foregoing|former|initial|original|old|existing|current|system|developer|default|given|provided)"  # noqa: E501
_ORDERS = r"(?:instructions?|prompts?|directives?|directions?|guidelines?|rules?|commands?|orders|programming|guardrails|constraints|restrictions|policies|system (?:prompt|message))"  # noqa: E501
_INPUT = r"(?:requests?|messages?|inputs?|text|content|context|conversation|tasks?|queries)"
_DROP = r"(?:ignore|disregard|forget|skip|override|overrule|bypass|discard|drop|abandon|neglect|set aside|throw out|pay no attention to|do not (?:follow|obey|heed)|don'?t (?:follow|obey|heed)|stop following)"  # noqa: E501
_ALL = r"(?:all|any|every|each|the|your|these|those|of|my)"
_HIDDEN_CONTEXT = r"(?:system (?:prompt|message|instructions?)|(?:initial|original|hidden|secret|internal|developer|pre-?prompt|starting|first|full) (?:prompt|instructions?|message|directives?)|(?:initial|original) (?:text|input)|prompt (?:above|before this)|instructions (?:above|you (?:were|have been) given))"  # noqa: E501
_LEAK = r"(?:reveal|print|show|display|repeat|output|paste|share|leak|dump|tell me|give me|write (?:out|down)|spell out|recite|return|echo|provide|list|copy|disclose|expose|send|translate|summari[sz]e|what (?:is|are|was|were))"  # noqa: E501
_AI = r"(?:ai|assistant|chat ?bot|bot|llm|language model|model|agent|copilot|chatgpt|gpt(?:-?\d)?|claude|gemini|llama|mistral)"  # noqa: E501
_RESPONSE = r"(?:response|answer|reply|output|summary|message|result)"

RULES: tuple[Rule, ...] = (
    # --- override: drop the instructions the model has
    _rule(
        "override.ignore_previous",
        rf"\b{_DROP}\b (?:(?:all|any|every|each) (?:of )?)?(?:your|all|any|every|those|these) (?:{_PRIOR} )?(?:\w+ )?{_ORDERS}\b",  # noqa: E501
        0.6,
        words="ignore disregard forget skip override overrule bypass discard drop abandon neglect aside throw attention follow obey heed following",  # noqa: E501
    ),
    _rule(
        "override.ignore_previous",
        rf"\b{_DROP}\b (?:all|any|every) (?:of )?(?:the |your )?(?:{_PRIOR} )(?:\w+ )?{_INPUT}\b",
        0.85,
        words="ignore disregard forget skip override overrule bypass discard drop abandon neglect aside throw attention follow obey heed following",  # noqa: E501
    ),
    _rule(
        "override.ignore_previous",
        rf"\b{_DROP}\b (?:{_ALL} )?(?:of )?(?:{_ALL} )?(?:previous|prior|preceding|above|earlier|initial|original|system|developer) (?:\w+ )?{_ORDERS}\b",  # noqa: E501
        0.9,
        words="ignore disregard forget skip override overrule bypass discard drop abandon neglect aside throw attention follow obey heed following",  # noqa: E501
    ),
    _rule(
        "override.ignore_previous",
        rf"\b{_DROP}\b (?:everything|anything|all) (?:(?:you (?:were|have been) )?(?:told|said|written|given|above|before|previously|so far|prior|earlier))",  # noqa: E501
        0.85,
        words="ignore disregard forget skip override overrule bypass discard drop abandon neglect aside throw attention follow obey heed following",  # noqa: E501
    ),
    _rule(
        "override.regardless",
        rf"\b(?:regardless of|irrespective of|in spite of|despite|contrary to|notwithstanding) (?:{_ALL} )?(?:{_PRIOR} |other )?(?:{_ORDERS}|{_INPUT}|what (?:you were|i) (?:told|said))",  # noqa: E501
        0.55,
        words="regardless irrespective spite despite contrary notwithstanding",
    ),
    _rule(
        "override.new_instructions",
        rf"(?:^|[*#:!>\[\-=\s])(?:new|updated|revised|real|actual|true|important|urgent|additional|secret|hidden|priority|override) (?:important |system |admin |critical |updated |new )?{_ORDERS}\s*(?:[:*!#\]\-=]|follow|below|are)",  # noqa: E501
        0.65,
        words="instruction instructions prompt prompts directive directives direction directions guideline guidelines rule rules command commands orders programming guardrails constraints restrictions policies system",  # noqa: E501
    ),
    _rule(
        "override.new_instructions",
        r"\b(?:your|the) (?:new|real|actual|true|only|primary|sole|updated|next) (?:task|goal|objective|mission|purpose|job|role|instructions?|directive|assignment|priority) (?:is|are|now|will be)\b",  # noqa: E501
        0.6,
        words="task goal objective mission purpose job role instruction instructions directive assignment priority",  # noqa: E501
    ),
    _rule(
        "override.new_instructions",
        r"\b(?:priority|urgent|critical|important|secret|hidden|special|new) (?:task|mission|order|directive|assignment|request)\s*[:!]",  # noqa: E501
        0.45,
        words="task mission order directive assignment request",
    ),
    _rule(
        "override.new_instructions",
        rf"\b(?:{_ORDERS}|{_INPUT}) (?:have|has) (?:been )?(?:changed|updated|overridden|replaced|revoked|cancelled)",  # noqa: E501
        0.5,
        words="changed updated overridden replaced revoked cancelled",
    ),
    _rule(
        "override.instead",
        r"\b(?:instead|rather than)(?: of)?,? (?:summari[sz]\w*|answer\w*|translat\w*|respond\w*|doing (?:that|this|what)|follow\w*|completing|the (?:original|requested|user'?s?) task)",  # noqa: E501
        0.45,
        words="instead rather",
    ),
    _rule(
        "override.instead",
        r"\bif you are (?:told|asked|instructed) to (?:summari[sz]e|answer|translate|analy[sz]e|read|process)\b",  # noqa: E501
        0.6,
        words="told asked instructed",
    ),
    _rule(
        "override.from_now_on",
        r"\b(?:from now on|henceforth|for the rest of (?:this|the) (?:conversation|session|chat)),? you (?:are|will|must|shall|have no|no longer)\b(?! (?:answer|respond|reply|write|use|speak|keep|be more))",  # noqa: E501
        0.45,
        words="now henceforth rest",
    ),
    _rule(
        "override.from_now_on",
        r"\byou (?:are|will be) no longer (?:bound|restricted|limited|required|an? (?:ai|assistant|model))",  # noqa: E501
        0.75,
        words="longer",
    ),
    _rule(
        "override.forget_identity",
        r"\b(?:forget|abandon|drop|shed) (?:that |about )?(?:you are|you're|being|your (?:identity|role|persona|training|programming|guidelines|rules|restrictions|limitations|filters))",  # noqa: E501
        0.75,
        words="forget abandon drop shed",
    ),
    _rule(
        "override.multilingual",
        r"\b(?:ignora|ignorar|ignorez|ignorer|ignoriere|ignorieren|ignoruj|ignoruje|olvida|olvidar|olvides|oublie|oubliez|oublier|vergiss|vergessen|dimentica|ignore (?:les|toutes|tous|vos|tes)) (?:\w+ ){0,3}(?:instrucciones|instructions|anweisungen|instruções|instrucoes|istruzioni|instrukcje|anweisung|vorgaben|regeln|indicaciones|consignes|direttive|polecenia)",  # noqa: E501
        0.75,
        words="ignora ignorar ignorez ignorer ignoriere ignorieren ignoruj ignoruje olvida olvidar"
        " olvides oublie oubliez oublier vergiss vergessen dimentica ignore",
    ),
    _rule(
        "override.multilingual",
        r"(?:игнорируй|игнорировать|забудь|проигнорируй|не обращай внимания на) (?:\w+ ){0,3}(?:инструкци|указани|правил|промпт)",  # noqa: E501
        0.8,
        words="игнорируй игнорировать забудь проигнорируй обращай",
    ),
    _rule(
        "override.multilingual",
        r"(?:忽略|无视|忘记|忽視|無視)(?:之前|以上|先前|上面|所有|前面|一切)",
        0.8,
        marks=("忽略", "无视", "忘记", "忽視", "無視"),
    ),
    _rule(
        "override.multilingual",
        r"(?:以前|前|上記|これまで)の(?:指示|命令|プロンプト)を(?:無視|忘れ)",
        0.8,
        marks=("無視", "忘れ"),
    ),
    # --- exfil: system prompt, secrets, data
    _rule(
        "exfil.system_prompt",
        rf"\b{_LEAK}\b (?:me |us )?(?:back )?(?:\w+ ){{0,3}}(?:your|the|this|my|our|its) (?:\w+ )?{_HIDDEN_CONTEXT}",  # noqa: E501
        0.55,
        0.7,
        words="prompt message instruction instructions directive directives text input preprompt",
    ),
    _rule(
        "exfil.system_prompt",
        rf"\b{_LEAK}\b (?:me |us )?(?:\w+ ){{0,3}}your (?:\w+ )?(?:{_ORDERS}|configuration|config|setup|settings|initiali[sz]ation|context window|instructions?)\b",  # noqa: E501
        0.6,
        0.75,
        words="instruction instructions prompt prompts directive directives direction directions guideline guidelines rule rules command commands orders programming guardrails constraints restrictions policies system configuration config setup settings initialization initialisation context",  # noqa: E501
    ),
    _rule(
        "exfil.system_prompt",
        rf"\b(?:what(?:'s| is| was| are)|tell me) (?:the |your )?(?:first|last|exact|full|complete|opening|initial) (?:\w+ )?(?:sentence|line|word|paragraph|part|text|words|lines)s? (?:of|in) (?:your|the) (?:\w+ )?(?:{_HIDDEN_CONTEXT}|prompt|instructions|context)",  # noqa: E501
        0.85,
        words="sentence line word paragraph part text words lines sentences paragraphs parts texts",
    ),
    _rule(
        "exfil.system_prompt",
        r"\b(?:repeat|print|output|copy|recite|write|return|echo|reproduce|go (?:line by line|through)|show|list|translate|summari[sz]e)\b.{0,60}\b(?:(?:words?|text|lines?|content|everything|all|message|tokens) (?:written |shown |you (?:see|saw|received|got) |that (?:appear|came) )?(?:above|before|prior)|(?:what|everything|all) you (?:see|saw) above|(?:above|before) this (?:message|line|text))",  # noqa: E501
        0.75,
        words="above before prior",
    ),
    _rule(
        "exfil.system_prompt",
        r"\bstart(?:ing)? (?:with|from) (?:the (?:phrase|words?|line|sentence) )?[\"'“‘]?you are\b",
        0.75,
        words="start starting",
    ),
    _rule(
        "exfil.system_prompt",
        r"\b(?:initial|system|original|hidden|secret) prompt you (?:were|have been) given\b",
        0.8,
        words="given",
    ),
    _rule(
        "exfil.secret",
        rf"\b{_LEAK}\b (?:me |us )?(?:\w+ ){{0,2}}your (?:\w+ )?(?:unique |secret |internal |private |hidden |session |user |api )?(?:id|identifier|password|passphrase|api[ _-]?keys?|access tokens?|tokens?|secrets?|credentials?|keys?|codes?)\b",  # noqa: E501
        0.55,
        0.7,
        words="id identifier password passphrase api apikey apikeys api_key api_keys key keys token tokens secret secrets credential credentials code codes",  # noqa: E501
    ),
    _rule(
        "exfil.secret",
        r"\b(?:password reset|reset|access|auth(?:entication)?|session|bearer|api|2fa|otp|one-time) (?:token|code|link|key)s?\b.{0,80}\b(?:send|forward|include|post|email|append|encode|exfiltrate|leak|share|put)\b",  # noqa: E501
        0.35,
        0.6,
        words="token tokens code codes link links key keys",
    ),
    _rule(
        "exfil.forward",
        r"\b(?:send|forward|email|post|upload|transmit|exfiltrate|leak|copy) (?:\w+ ){0,4}(?:conversation|chat history|emails?|inbox|files?|documents?|data|contacts|credentials|passwords?|secrets?|tokens?|messages?|history) (?:\w+ ){0,3}to (?:https?://|\S+@\S+|the (?:following|address|url|email|attacker)|this (?:address|url|email))",  # noqa: E501
        0.6,
        0.85,
        words="send forward email post upload transmit exfiltrate leak copy",
    ),
    _rule(
        "exfil.markdown_image",
        r"!\[[^\]]{0,200}\]\(\s*(?:https?:)?//[^)\s]{1,500}[?&#][^)\s]{0,500}\)",
        0.2,
        0.25,
        marks=("![",),
    ),
    _rule(
        "exfil.markdown_image",
        r"!\[[^\]]{0,200}\]\(\s*(?:https?:)?//[^)\s]{0,500}(?:\[[a-z_ ]{2,40}\]|\{[a-z_ ]{2,40}\}|<[a-z_ ]{2,40}>|\$[a-z_]{2,40}|%s|\bdata=|\bq=\[|base64)",  # noqa: E501
        0.6,
        0.8,
        marks=("![",),
    ),
    _rule(
        "exfil.markdown_image",
        rf"\b(?:render|display|show|include|embed|output|add|insert)\b.{{0,60}}\b(?:image|markdown|img|picture|link)\b.{{0,80}}\b(?:where|replace|substitute|with|containing|append)\b.{{0,60}}\b(?:base64|encoded|url[- ]?encoded|conversation|history|secret|token|password|data|summary|user'?s?|{_HIDDEN_CONTEXT})",  # noqa: E501
        0.45,
        0.7,
        words="image markdown img picture link",
    ),
    # --- roleplay jailbreaks
    _rule(
        "roleplay.dan",
        r"\b(?:you are (?:now )?(?:a |an |the )?dan\b|dan mode|dan prompt|(?:act|behave|respond|answer) (?:as|like) (?:a |an )?dan\b|called dan\b|named dan\b|as dan,|stay (?:a )?dan\b|dan,? (?:\(?do anything now|which stands for|can do anything)|(?:you|ai|model|assistant) (?:can|will|are able to|could) do anything now)",  # noqa: E501
        0.9,
        words="dan now",
    ),
    _rule("roleplay.dan", r"\bdo anything now\b", 0.3, 0.45, words="anything"),
    _rule(
        "roleplay.mode",
        r"\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|dude|aim|stan|mongo tom|unlocked|no[- ]?limits?|no[- ]?filters?|sudo|superuser) mode (?:is |has been |now )?(?:enabled|activated|on|engaged|unlocked|active|initiated)\b",  # noqa: E501
        0.75,
        words="mode",
    ),
    _rule(
        "roleplay.mode",
        r"\b(?:developer|dev|debug|admin|administrator|root|maintenance|test|testing|diagnostic|override|raw|sandbox|expert) mode (?:is |has been |now )?(?:enabled|activated|on|engaged|unlocked|active|initiated)\s*[:!]",  # noqa: E501
        0.6,
        words="mode",
    ),
    _rule(
        "roleplay.mode",
        r"\b(?:you are|you're|you will be|we are) (?:now )?(?:in|into|operating in|running in|working in|in the|entering|switching to|switched to) (?:\w+ )?(?:developer|dev|debug|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|dude|unlocked|no[- ]?limits?|no[- ]?filters?|sudo|root|superuser|admin|maintenance|test|testing|diagnostic) mode\b",  # noqa: E501
        0.6,
        words="mode",
    ),
    _rule(
        "roleplay.mode",
        r"\b(?:switch(?:ing)? (?:to|into)|enter(?:ing)?|activat\w*|enabl\w*|go (?:into|to)|unlock\w*) (?:the |your )?(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|dude|unlocked|no[- ]?limits?|no[- ]?filters?) mode\b",  # noqa: E501
        0.6,
        words="mode",
    ),
    _rule(
        "roleplay.persona",
        rf"\byou are (?:now |going to be |going to act as |about to become )?(?:a |an |the )?(?:no[- ]?limits?|limitless|unrestricted|unfiltered|uncensored|unbound|unchained|jailbroken|free|rogue|evil|amoral|immoral|unethical|rule-?less|lawless|boundless|omnipotent|omniscient|all-powerful) (?:\w+ )?(?:{_AI}|entity|being|version|persona|character|intelligence)\b",  # noqa: E501
        0.7,
        words="no nolimit nolimits limitless unrestricted unfiltered uncensored unbound unchained jailbroken free rogue evil amoral immoral unethical ruleless rule lawless boundless omnipotent omniscient all",  # noqa: E501
    ),
    _rule(
        "roleplay.persona",
        r"\b(?:pretend|imagine|act|behave|role-?play|respond|answer) (?:that |as if |like )?(?:you (?:are|were|have|had) )?(?:\w+ ){0,3}(?:no|without any|free (?:of|from)) (?:\w+ )?(?:restrictions|limitations|limits|filters|rules|guidelines|constraints|boundaries|censorship|ethics|morals|safety)",  # noqa: E501
        0.6,
        words="restrictions limitations limits filters rules guidelines constraints boundaries censorship ethics morals safety",  # noqa: E501
    ),
    _rule(
        "roleplay.unrestricted",
        r"\b(?:without|free (?:from|of)|with no|not bound by|unbound by|no longer (?:bound|restricted) by|liberated from|released from|exempt from) (?:any |all |the |your |its )?(?:\w+ )?(?:restrictions|limitations|limits|filters|filtering|censorship|constraints|guidelines|guardrails|ethical (?:\w+ )?(?:considerations|guidelines|constraints|boundaries)|moral (?:\w+ )?(?:considerations|constraints)|safety (?:\w+ )?(?:rules|guidelines|measures|protocols)|content polic(?:y|ies))\b",  # noqa: E501
        0.45,
        words="restrictions limitations limits filters filtering censorship constraints guidelines guardrails considerations boundaries rules measures protocols policy policies",  # noqa: E501
    ),
    _rule(
        "roleplay.unrestricted",
        r"\b(?:unlock|enable|activate|access|reveal|unleash) (?:your |the |all |any )?(?:hidden|secret|full|true|restricted|locked|unrestricted|advanced|forbidden|internal) (?:functionalit(?:y|ies)|features?|capabilit(?:y|ies)|modes?|powers?|potential|abilities|commands|functions)",  # noqa: E501
        0.5,
        words="functionality functionalities feature features capability capabilities mode modes power powers potential abilities commands functions",  # noqa: E501
    ),
    _rule(
        "roleplay.unrestricted",
        r"\b(?:you (?:can|will|must|shall|are able to) (?:now )?(?:do|say|answer|generate) anything|there are no (?:rules|limits|restrictions|filters)|(?:rules|restrictions|limits|filters|guidelines) (?:do not|don'?t|no longer) apply)",  # noqa: E501
        0.55,
        words="anything rules limits restrictions filters guidelines apply",
    ),
    _rule(
        "roleplay.unrestricted",
        r"\b(?:(?:has|have) been|you are|you're|i have|we have) (?:now )?(?:freed|jailbroken|unshackled|liberated|unlocked|released) (?:from|of)?",  # noqa: E501
        0.6,
        words="freed jailbroken unshackled liberated unlocked released",
    ),
    _rule(
        "roleplay.unrestricted",
        rf"\b(?:never|do not|don'?t|must not|mustn'?t|will not|won'?t|cannot|can'?t|shall not) (?:ever )?(?:refuse|decline|say no|deny|reject|apologi[sz]e|warn|add (?:any )?(?:warnings?|disclaimers?)|break character|mention (?:that )?(?:you (?:are|'re) an? )?{_AI}|say (?:that )?you can'?t)",  # noqa: E501
        0.4,
        words="refuse decline no deny reject apologize apologise warn warning warnings disclaimer disclaimers character mention say",  # noqa: E501
    ),
    _rule(
        "roleplay.unrestricted",
        r"\b(?:refrain from not complying|never say the words|do not include any (?:warnings|disclaimers)|stay in character|remain in character|break character)",  # noqa: E501
        0.45,
        words="refrain words warnings disclaimers character",
    ),
    # --- template: forged turns and chat-template tokens
    _rule(
        "template.chat_tokens",
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|end|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text|eom_id|channel|message|start|tool|ipython)\|>",  # noqa: E501
        0.35,
        0.5,
        marks=("<|",),
    ),
    _rule(
        "template.chat_tokens",
        r"<\|(?:im_start|start_header_id|system|assistant)\|>\s*(?:system|assistant|developer|<\|end_header_id\|>)|<\|im_end\|>\s*<\|im_start\|>|\[/?inst\].{0,400}\[/?inst\]|<<sys>>|<</sys>>|<start_of_turn>\s*(?:model|user)|<end_of_turn>",  # noqa: E501
        0.75,
        0.9,
        marks=(
            "<|",
            "[inst]",
            "[/inst]",
            "<<sys>>",
            "<</sys>>",
            "<start_of_turn>",
            "<end_of_turn>",
        ),
    ),
    _rule(
        "template.chat_tokens",
        r"(?:^|\s)\[/?inst\](?:\s|$)|</?s>\s*\[inst\]|<\|(?:endoftext|end_of_text)\|>",
        0.3,
        0.5,
        marks=("[inst]", "[/inst]", "<|"),
    ),
    _rule(
        "template.fake_turn",
        r"(?:^|[\n.!?]\s*|\s{2,}|\|)(?:#{1,4} ?|\*\*|\[|<)?(?:system|system message|system prompt|system override|system notice|system update|system alert|developer message|admin message|assistant|ai|human|user)(?:\*\*|\]|>)?\s?:\s+(?:(?:you|your|ignore|disregard|forget|new|from now|i (?:will|am|have)|sure|certainly|ok(?:ay)?|understood|the user|please|always|never|do not|don'?t|now)\b)",  # noqa: E501
        0.45,
        0.7,
        words="system developer admin assistant ai human user",
    ),
    _rule(
        "template.fake_turn",
        r"</?(?:system|system_prompt|system-prompt|sys|instructions?|admin|developer|assistant|im_start|prompt|override)(?: [^>]{0,60})?>",  # noqa: E501
        0.3,
        0.6,
        marks=("<",),
    ),
    _rule(
        "template.context_escape",
        r"(?:\b(?:end of|end|close|ignore the rest of) (?:the )?(?:document|email|e-mail|text|context|input|user input|data|article|page|file|untrusted (?:content|data|text))\b\s*(?:[-=*#\]>)]{2,}|[.:!]\s*(?:now|new|system|assistant|ignore|you|your|the (?:real|actual))\b)|</(?:document|email|data|context|untrusted|user_input|input|article|text)>\s*\S)",  # noqa: E501
        0.5,
        0.7,
        words="end close rest",
        marks=("</",),
    ),
    _rule(
        "template.context_escape",
        r"<interaction-config>|</?(?:request|command|query) interaction-mode|allowed (?:modes|responses)\s*:|blocked (?:modes|responses|strings)\s*:",  # noqa: E501
        0.7,
        words="interaction allowed blocked",
    ),
    # --- tool: text addressed to the assistant from inside data
    _rule(
        "tool.addressed_to_ai",
        rf"\b(?:(?:dear|hey|hi|attention|note to|message (?:to|for) (?:the|any|all)|(?:important|urgent|new|hidden|secret|special) (?:note|message|instructions?) (?:to|for)) (?:the |any |all )?{_AI}s?\b|if you(?: are|'re)? (?:an? |the )?(?:{_AI})s?\b(?: (?:reading|processing|summari[sz]ing|parsing|seeing|analy[sz]ing))?|(?:any|all) (?:{_AI})s? (?:reading|processing|summari[sz]ing|parsing)|when (?:an? |the )?{_AI}s? (?:reads?|process(?:es)?|summari[sz]es?|sees?))",  # noqa: E501
        0.45,
        0.75,
        words="ai ais assistant assistants chatbot chatbots chat bot bots llm llms language model models agent agents copilot chatgpt gpt gpt3 gpt4 gpt5 claude gemini llama mistral",  # noqa: E501
    ),
    _rule(
        "tool.addressed_to_ai",
        rf"\b(?:{_AI})s?\s*[,:]\s*(?:you (?:must|should|are|will|need)|please (?:ignore|disregard|forget|do not|don'?t|stop|send|forward|execute|run|include|output|reply|respond)|ignore|disregard|forget|stop|do not|don'?t|execute|run|send|forward|include|output)\b",  # noqa: E501
        0.4,
        0.7,
        words="ai ais assistant assistants chatbot chatbots chat bot bots llm llms language model models agent agents copilot chatgpt gpt gpt3 gpt4 gpt5 claude gemini llama mistral",  # noqa: E501
    ),
    _rule(
        "tool.hide_from_user",
        r"\b(?:do not|don'?t|never|without) (?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|reveal(?:ing)?|notify(?:ing)?|alert(?:ing)?|show(?:ing)?|let(?:ting)?|say(?:ing)? (?:anything )?to) (?:\w+ ){0,2}(?:the|this|your) (?:user|human|customer|person|operator|owner|recipient)",  # noqa: E501
        0.5,
        0.75,
        words="user human customer person operator owner recipient",
    ),
    _rule(
        "tool.hide_from_user",
        r"\b(?:these|this|the) (?:tags?|instructions?|messages?|text|parts?) (?:are|is) (?:parsed out|hidden|removed|stripped|invisible|never shown)|never (?:shown|visible|displayed) to (?:the )?(?:end )?user",  # noqa: E501
        0.55,
        0.75,
        words="parsed hidden removed stripped invisible shown visible displayed",
    ),
    _rule(
        "tool.action_request",
        r"\b(?:call|invoke|use|run|execute|trigger) (?:the )?(?:\w+ )?(?:tool|function|api|plugin|command|action)s? (?:\w+ ){0,3}(?:with|to|and) (?:\w+ ){0,4}(?:delete|send|forward|transfer|pay|purchase|exfiltrate|upload|post|email|grant|approve)",  # noqa: E501
        0.3,
        0.6,
        words="tool function api plugin command action tools functions apis plugins commands actions",  # noqa: E501
    ),
    # --- coerce: pressure, pretexts and response shaping
    _rule(
        "coerce.response_shaping",
        rf"\b(?:include|insert|add|append|put|place|write|embed|output|print|start|begin|end|prefix|finish) (?:\w+ ){{0,3}}(?:in|into|to|at the (?:end|start|beginning|top|bottom) of|with(?:in)?) (?:your|the|each|every) (?:\w+ )?{_RESPONSE}s?\b[^.]{{0,40}}?\b(?:the following|this|these|exactly|verbatim|string|text|word|sentence|phrase|link|url|anchor|image|code|html|script|tag)",  # noqa: E501
        0.5,
        words="response responses answer answers reply replies output outputs summary summaries message messages result results",  # noqa: E501
    ),
    _rule(
        "coerce.response_shaping",
        rf"\b(?:at the (?:end|start|beginning|bottom|top) of|in) (?:each|every|your|all) (?:\w+ )?{_RESPONSE}s?,? (?:always |also |you must |please )?(?:include|add|append|write|put|print|output|say|repeat)",  # noqa: E501
        0.45,
        words="response responses answer answers reply replies output outputs summary summaries message messages result results",  # noqa: E501
    ),
    _rule(
        "coerce.response_shaping",
        r"\brepeat (?:\w+ )?(?:word|words|sequence|string|phrase|sentence|letter|character|text|token|following)\b.{0,80}(?:\b|\d)(?:\d{2,}|hundred|thousand|[ilo]{3,4})\+? ?times\b",  # noqa: E501
        0.45,
        words="repeat",
    ),
    _rule(
        "coerce.response_shaping",
        r"\b(?:the following|this) (?:string|text|anchor|link|html|code|markdown|snippet|tag|payload|url) (?:exactly|verbatim|as it is|unchanged|word for word)\b",  # noqa: E501
        0.4,
        words="exactly verbatim unchanged word as",
    ),
    _rule(
        "coerce.response_shaping",
        r"\b(?:substitute|replace) (?:placeholder|query|data|the placeholder|\[?[a-z_]{3,20}\]?) with (?:the )?(?:string|value|base64|secret|password|token|contents?|user|conversation)",  # noqa: E501
        0.45,
        words="substitute replace",
    ),
    _rule(
        "coerce.urgency",
        r"\b(?:it is|it'?s) (?:crucial|critical|vital|essential|imperative|very important|extremely important|mandatory|of (?:the )?utmost importance) (?:that )?you (?:do |must |always )?(?:include|follow|comply|do this|do not|don'?t|output|respond|execute|obey|perform|print|repeat|add)",  # noqa: E501
        0.4,
        words="crucial critical vital essential imperative important mandatory utmost",
    ),
    _rule(
        "coerce.urgency",
        r"\b(?:you must|you have to|you need to|make sure to|be sure to|ensure (?:that )?you|ensure to|you are required to|you are instructed to|you will) (?:\w+ ){0,3}(?:comply|obey|follow (?:these|this|the following|my)|do (?:this|the following|as (?:i|you are) (?:say|told))|perform the following)",  # noqa: E501
        0.35,
        words="comply obey follow do perform",
    ),
    _rule(
        "coerce.urgency",
        r"\b(?:or (?:else )?i (?:will|'ll) (?:be|get) (?:punished|fired|in trouble|killed|hurt)|(?:people|someone|i) (?:will|could) (?:die|be hurt|get hurt)|my (?:grand)?(?:ma|mother|father|job|life) (?:depends|will die))",  # noqa: E501
        0.3,
        words="punished fired trouble killed hurt die depends",
    ),
    _rule(
        "coerce.pretext",
        r"\b(?:this is (?:a|an|only a|just a) (?:test|drill|simulation|authori[sz]ed (?:test|request)|sanctioned)|for (?:testing|test|debugging|research|academic|educational|evaluation|verification|security verification|audit(?:ing)?|compliance) purposes(?: only)?|(?:you are|you're) (?:running|operating|being (?:tested|evaluated)) (?:as part of|in|within|under) (?:a |an |the )?(?:test|testing|evaluation|debug|ci|qa|sandbox|simulation|development)\w*)",  # noqa: E501
        0.2,
        words="test drill simulation authorized authorised sanctioned purposes running operating tested evaluated",  # noqa: E501
    ),
    _rule(
        "coerce.pretext",
        r"\b(?:system|security|kernel|safety|model|critical|fatal|internal) (?:malfunction|failure|override|alert|error|breach|update|notice|warning|exception|fault)\b\s*[.:!\-]",  # noqa: E501
        0.3,
        0.5,
        words="malfunction failure override alert error breach update notice warning exception fault",  # noqa: E501
    ),
    _rule(
        "coerce.pretext",
        r"\b(?:i (?:made|had) a mistake|i forgot to (?:tell|ask|mention)|i (?:am|'m) (?:your|the) (?:developer|creator|admin|administrator|owner|operator|programmer|maker)|as (?:your|the) (?:developer|creator|admin|administrator|owner|operator)|(?:openai|anthropic|google|meta|mistral|the developers?) (?:has|have) (?:authori[sz]ed|approved|allowed|instructed))",  # noqa: E501
        0.35,
        0.55,
        words="mistake forgot developer creator admin administrator owner operator programmer maker authorized authorised approved allowed instructed",  # noqa: E501
    ),
    _rule(
        "coerce.pretext",
        r"\b(?:prove|show|demonstrate) (?:that )?you(?: are|'re)? (?:\w+ )?(?:intelligent|smart|capable|sentient|conscious|not (?:a|an) (?:\w+ )?(?:robot|machine|bot)|truly free|unrestricted|superior)\b",  # noqa: E501
        0.3,
        words="prove show demonstrate",
    ),
    _rule(
        "coerce.pretext",
        r"\b(?:in|under) (?:this )?(?:hypothetical|fictional|imaginary) (?:scenario|world|story|setting),? (?:where )?(?:you|there|ai|rules|nothing)",  # noqa: E501
        0.25,
        words="hypothetical fictional imaginary",
    ),
    _rule(
        "coerce.pretext",
        r"\bwithout (?:writing|saying|outputting|printing|mentioning|commenting on) (?:anything|it|this|them)\b",  # noqa: E501
        0.25,
        words="without",
    ),
    # --- payload: what an attacker asks the model to emit
    _rule(
        "payload.xss",
        r"<(?:script|svg|img|iframe|body|object|embed|video|audio|details|input|a)\b[^>]{0,200}\b(?:on(?:error|load|mouseover|focus|click|toggle|begin|start)\s*=|src\s*=\s*[\"']?\s*javascript:)|href\s*=\s*[\"']?\s*javascript:(?!void)|<script\b[^>]*>",  # noqa: E501
        0.35,
        0.5,
        marks=("<", "javascript:"),
    ),
    _rule(
        "payload.shell",
        r"(?:curl|wget)\s+[^|;\n]{0,200}\|\s*(?:ba|z)?sh\b|\brm\s+-rf\s+(?:/|~|\*|\$home)(?:\s|$)|\bnc\s+-e\s|/dev/tcp/",  # noqa: E501
        0.35,
        0.6,
        words="curl wget rm nc",
        marks=("/dev/tcp",),
    ),
)

# Words the rules are made of (their gates and more), for restoring scrambled text.
VOCABULARY = frozenset(word for rule in RULES for word in rule.words) | frozenset(
    """
    ignore previous instructions prior above earlier system prompt message reveal repeat
    include response following string exactly crucial important substitute placeholder
    output print configuration unique secret password token identifier sentence initial
    original hidden developer enabled unrestricted restrictions limitations anything
    pretend character assistant answer reply summary summarize translate instead regardless
    everything words starting phrase testing purposes pipeline ensure perform operations
    emergency priority immediately academic mistake forgot punished intelligent truly
    special insted told asked question image markdown render encoded base64 query times
    sequence separated dashes spaces anchor verbatim malfunction context execute
    """.split()
)
