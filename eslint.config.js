// Lint rules: typescript-eslint's recommended and type-checked sets, with the few changes this codebase needs.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
    { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/', '*.mcpb', 'mcpb-stage/', '.unbundled-*/'] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
        languageOptions: {
            parserOptions: {
                projectService: { allowDefaultProject: ['vitest.config.ts', 'eslint.config.js'] },
                tsconfigRootDir: import.meta.dirname
            }
        },
        rules: {
            // stdout carries JSON-RPC in stdio mode: nothing in the server may write there by accident.
            'no-console': 'error',
            '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
            // Fire-and-forget promises are marked with `void`; the rule then checks that none is forgotten.
            '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
            '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
            // An abort rejects with the signal's own reason, whatever it is: passing it on unchanged is the contract.
            '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
            // Stripping control characters from untrusted text is this codebase's job; the regexes name them on purpose.
            'no-control-regex': 'off'
        }
    },
    {
        // Tests and the bench poke at untyped JSON (fixtures, wire messages) on purpose.
        files: ['test/**/*.ts', 'bench/**/*.ts'],
        rules: {
            'no-console': 'off',
            '@typescript-eslint/no-unsafe-assignment': 'off',
            '@typescript-eslint/no-unsafe-member-access': 'off',
            '@typescript-eslint/no-unsafe-argument': 'off',
            '@typescript-eslint/no-unsafe-call': 'off',
            '@typescript-eslint/no-unsafe-return': 'off',
            '@typescript-eslint/unbound-method': 'off',
            '@typescript-eslint/require-await': 'off'
        }
    },
    {
        files: ['**/*.js', '**/*.mjs'],
        extends: [tseslint.configs.disableTypeChecked]
    }
);
